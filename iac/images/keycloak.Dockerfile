# Keycloak, optimized at build time: `start --optimized` writes nothing to the image at runtime,
# so the container's root filesystem can be read-only (Keycloak "Running in a container" guide).
# The version comes from lab.yml identity.keycloak_version (iac/config.py passes the image); the same
# build options as the native keycloak role (playbooks/roles/keycloak keycloak_build_options).
ARG KEYCLOAK_IMAGE=quay.io/keycloak/keycloak:26.7.3
FROM ${KEYCLOAK_IMAGE} AS builder
ENV KC_DB=postgres KC_HEALTH_ENABLED=true KC_METRICS_ENABLED=true KC_CACHE=local
RUN /opt/keycloak/bin/kc.sh build

FROM ${KEYCLOAK_IMAGE}
COPY --from=builder /opt/keycloak/ /opt/keycloak/
USER 1000
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
