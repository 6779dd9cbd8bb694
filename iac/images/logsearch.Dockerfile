# The lab's log search engine, its mTLS gateway and its shipper (context: repository root): the same
# OpenSearch minimal distribution, ingest module jars and Debian packages the logsearch role installs
# natively, at the same paths (iac/components.py Logging passes the role's values as build arguments).
FROM debian:12.8-slim AS fetch
ARG OPENSEARCH_VERSION
ARG OPENSEARCH_SHA256
# "<groupId:artifactId:version> <file> <sha256>" per line (playbooks/roles/logsearch logsearch_ingest_jars).
ARG INGEST_JARS
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven unzip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /dist
# Maven checks the repository's SHA-1; the pinned SHA-256 (lab.yml logging.opensearch_sha256) is checked too.
RUN mvn --batch-mode --quiet --strict-checksums dependency:copy \
      "-Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:${OPENSEARCH_VERSION}:zip" -DoutputDirectory=/dist \
 && echo "${OPENSEARCH_SHA256}  opensearch-${OPENSEARCH_VERSION}.zip" | sha256sum -c - \
 && unzip -q "opensearch-${OPENSEARCH_VERSION}.zip" -d /dist/home \
 && mkdir -p "/dist/home/opensearch-${OPENSEARCH_VERSION}/modules/ingest-common" \
 && printf '%s\n' "${INGEST_JARS}" | while read -r artifact file sum; do \
      [ -n "$artifact" ] || continue; \
      mvn --batch-mode --quiet --strict-checksums dependency:copy "-Dartifact=${artifact}" -DoutputDirectory=/dist/jars \
      && echo "${sum}  /dist/jars/${file}" | sha256sum -c - \
      && cp "/dist/jars/${file}" "/dist/home/opensearch-${OPENSEARCH_VERSION}/modules/ingest-common/" || exit 1; \
    done

FROM debian:12.8-slim
ARG OPENSEARCH_VERSION
ARG LOGSEARCH_HOME
ARG LOGSEARCH_CONF_DIR
ARG LOGSEARCH_DIRS
# The role's logsearch_packages minus Maven (only the fetch stage needs it), plus curl for the healthcheck.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless nginx rsyslog rsyslog-elasticsearch curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && groupadd --system --gid 10300 opensearch && useradd --system --uid 10300 --gid 10300 --home-dir /nonexistent --shell /usr/sbin/nologin opensearch \
 && groupadd --system --gid 10302 logshipper && useradd --system --uid 10302 --gid 10302 --home-dir /nonexistent --shell /usr/sbin/nologin logshipper
# Root-owned code (the engine cannot change it), as natively: <home>/opensearch-<version>, current -> it.
COPY --from=fetch /dist/home/ ${LOGSEARCH_HOME}/
RUN ln -s "${LOGSEARCH_HOME}/opensearch-${OPENSEARCH_VERSION}" "${LOGSEARCH_HOME}/current" \
 && install -d -o root -g 10300 -m 0750 "${LOGSEARCH_CONF_DIR}" \
 && cp "${LOGSEARCH_HOME}/current/config/log4j2.properties" "${LOGSEARCH_CONF_DIR}/" \
 && OPENSEARCH_PATH_CONF="${LOGSEARCH_CONF_DIR}" "${LOGSEARCH_HOME}/current/bin/opensearch-keystore" create \
 && chgrp 10300 "${LOGSEARCH_CONF_DIR}"/* && chmod 0640 "${LOGSEARCH_CONF_DIR}"/* \
 && printf '%s\n' "${LOGSEARCH_DIRS}" | while read -r dir uid; do if [ -n "$dir" ]; then install -d -o "$uid" -g "$uid" -m 0750 "$dir"; fi; done
ENV OPENSEARCH_PATH_CONF=${LOGSEARCH_CONF_DIR} OPENSEARCH_JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
USER 10300:10300
