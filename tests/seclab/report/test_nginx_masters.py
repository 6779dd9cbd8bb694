"""The host check of nginx masters (DevSec nginx-04) reads each master's configuration from `ps`."""

from __future__ import annotations

from tests.infra.test_nginx import NGINX_CONF, _master_configs


def test_master_configs_are_read_from_ps() -> None:
    ps = ("nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf -g daemon off;\n"
          "nginx: worker process\nnginx: master process /usr/sbin/nginx -c /etc/seclab/logsearch/gateway.conf\n"
          "nginx: master process /usr/sbin/nginx\n")
    assert _master_configs(ps) == [NGINX_CONF, "/etc/seclab/logsearch/gateway.conf", NGINX_CONF]
