# llama.cpp OpenAI-compatible server (python -m llama_cpp.server); compiled here, pinned version.
FROM python:3.12.8-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --prefix=/install "llama-cpp-python[server]==0.3.5"

FROM python:3.12.8-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 llama \
 && useradd --system --uid 10002 --gid 10002 --home-dir /nonexistent --shell /usr/sbin/nologin llama
COPY --from=build /install /usr/local
USER 10002:10002
EXPOSE 8081
