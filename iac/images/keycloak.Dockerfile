# Keycloak, optimized at build time: `start --optimized` writes nothing to the image at runtime,
# so the container's root filesystem can be read-only (Keycloak "Running in a container" guide).
ARG KEYCLOAK_IMAGE=quay.io/keycloak/keycloak:26.0.7
FROM ${KEYCLOAK_IMAGE} AS builder
ENV KC_DB=postgres KC_HEALTH_ENABLED=true KC_METRICS_ENABLED=true
RUN /opt/keycloak/bin/kc.sh build

FROM ${KEYCLOAK_IMAGE}
COPY --from=builder /opt/keycloak/ /opt/keycloak/
USER 1000
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
