# syntax=docker/dockerfile:1
# Two targets: the default is the production image (production dependencies and the compiled bridge, no sandbox);
# `--target sandbox` adds the offline sandbox, a development tool (docker-compose.yml's sandbox profile).

# Build stage: compiles the better-sqlite3 native addon against the runtime's Node and the TypeScript to dist/.
# tsconfig.build.json compiles dist/ without src/sandbox/.
FROM node:20.20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
COPY bin ./bin
COPY mappings ./mappings

# Production dependencies only: the sandbox's packages (@medplum/*, selfsigned), tsx and the compilers are dev
# dependencies. Pruning keeps the addon built above; the check fails the build if a sandbox package or dist/sandbox is left.
FROM build AS production-deps
RUN npm prune --omit=dev --no-audit --no-fund \
 && test ! -e node_modules/@medplum && test ! -e node_modules/selfsigned && test ! -e node_modules/tsx && test ! -e dist/sandbox

# Runtime stage: no compilers, non-root user, state and keys on volumes.
FROM node:20.20-bookworm-slim AS runtime
ENV NODE_ENV=production BRIDGE_CONFIG=/etc/bridge/bridge.config.yaml
WORKDIR /app
COPY --from=production-deps /app/package.json /app/package-lock.json ./
COPY --from=production-deps /app/node_modules ./node_modules
COPY --from=production-deps /app/dist ./dist
COPY --from=production-deps /app/bin ./bin
COPY --from=production-deps /app/mappings ./mappings
# uid/gid 10001 (the Kubernetes manifests' runAsUser/fsGroup). /app/state and /app/keys are created owned by it: Docker
# fills a new named volume from the image's directory (owner and mode included), so the volumes are writable as this user.
RUN groupadd --system --gid 10001 bridge && useradd --system --uid 10001 --gid bridge --home-dir /app --no-create-home --shell /usr/sbin/nologin bridge \
 && mkdir -p /app/state /app/keys && chown bridge:bridge /app/state /app/keys && chmod 0700 /app/state /app/keys
USER bridge
VOLUME ["/app/state", "/app/keys"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The compiled build, not tsx (whose loader thread costs ~60 MB). The old-space cap keeps RSS near the live set (V8
# otherwise grows the heap lazily); 4 MB semi-spaces keep the young generation at 12 MB instead of up to 48 MB, for
# ~2% more time in scavenges. Measured in bench/results.md (1M events: 345 → 288 MB peak RSS).
ENTRYPOINT ["node", "--max-old-space-size=256", "--max-semi-space-size=4", "dist/cli/main.js"]
CMD ["serve"]

# The offline sandbox (`docker build --target sandbox .`, docker-compose.yml's sandbox profile): the runtime image plus
# every dev dependency and the TypeScript sources, run through tsx (dist/ has no sandbox). Never deploy it.
FROM runtime AS sandbox
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/tsconfig.json ./
COPY --from=build /app/src ./src
HEALTHCHECK --interval=2s --timeout=2s --retries=60 CMD ["test", "-s", "/app/state/sandbox/bridge.config.yaml"]
ENTRYPOINT ["node", "--import", "tsx", "src/cli/main.ts"]
CMD ["sandbox", "--dir", "state/sandbox"]

# The default target (`docker build .`): the production image, without the sandbox.
FROM runtime
