# The upstream exporter image is FROM scratch: no shell, so no healthcheck is possible (CIS 4.6).
# Same pinned binary on a pinned busybox, which brings wget for the healthcheck.
FROM nginx/nginx-prometheus-exporter:1.3.0 AS bin
FROM busybox:1.37.0
COPY --from=bin /usr/bin/nginx-prometheus-exporter /usr/bin/nginx-prometheus-exporter
USER 65534:65534
ENTRYPOINT ["/usr/bin/nginx-prometheus-exporter"]
