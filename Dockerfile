# syntax=docker/dockerfile:1
# Build stage: compiles the better-sqlite3 native addon against the runtime's Node.
FROM node:20.20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY mappings ./mappings

# Runtime stage: no compilers, non-root user, state and keys on volumes.
FROM node:20.20-bookworm-slim
ENV NODE_ENV=production BRIDGE_CONFIG=/etc/bridge/bridge.config.yaml
WORKDIR /app
COPY --from=build /app /app
RUN useradd --system --uid 10001 --home /app bridge && mkdir -p /app/state /app/keys && chown -R bridge /app/state /app/keys
USER bridge
VOLUME ["/app/state", "/app/keys"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The heap cap keeps RSS near the live set (V8 otherwise grows the heap lazily); see bench/results.md.
ENTRYPOINT ["node", "--max-old-space-size=256", "bin/bridge.js"]
CMD ["serve"]
