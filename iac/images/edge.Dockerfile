# nginx + ModSecurity v3 connector + OWASP CRS 3.3.4 from Debian 12: the same packages the Ansible
# engine installs, so the rendered waf_rules/ paths (/usr/share/modsecurity-crs) are identical.
FROM debian:12.8-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-http-modsecurity modsecurity-crs curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && groupadd --system --gid 10101 edge \
 && useradd --system --uid 10101 --gid 10101 --home-dir /nonexistent --shell /usr/sbin/nologin edge \
 && install -d -o 10101 -g 10101 -m 0750 /var/log/seclab /var/log/seclab/waf
# Non-root master process: listens on unprivileged ports 8080/8443/9443/8081 (no NET_BIND_SERVICE).
USER 10101:10101
EXPOSE 8080 8443 9443
CMD ["nginx", "-g", "daemon off;", "-c", "/etc/seclab/nginx/nginx.conf"]
