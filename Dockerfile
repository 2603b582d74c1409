# syntax=docker/dockerfile:1
# One image for both processes:
#   control plane (default): docker run hcp
#   agent:                   docker run hcp npm run agent -- --site texas-1 --control-plane host:50051 …

# ---- deps: node_modules from the lockfile only, so source edits keep this layer cached -----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies stay: the processes run through tsx (`npm run control-plane` / `agent`).
RUN npm ci --no-audit --no-fund && npm cache clean --force

# ---- check: the image is only built from code that type-checks ---------------------------
FROM deps AS check
COPY . .
RUN npx tsc --noEmit && npx tsc --noEmit -p web
# the web console's assets (web/dist), served by the control plane at /
RUN npx tsx scripts/build-web.ts --force

# ---- runtime -------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HCP_HTTP_HOST=0.0.0.0 \
    HCP_GRPC_HOST=0.0.0.0 \
    HCP_MQTT_HOST=0.0.0.0 \
    HCP_DATA_DIR=/app/data \
    NPM_CONFIG_UPDATE_NOTIFIER=false
# Copying from `check` (node_modules included) makes the type-check a dependency of the image.
COPY --from=check --chown=node:node /app ./
# openssl: `npm run certs` makes the development CA (docker-compose.yml's certs service); the
# certs and secrets volumes mount on directories the node user owns.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/* \
 && rm -rf test .ci && mkdir -p /app/data /app/certs /app/secrets && chown node:node /app/data /app/certs /app/secrets
USER node
# REST, gRPC (agents and Fleet API), MQTT (mqtts on 8883 when TLS is on)
EXPOSE 8080 50051 1883 8883
# (plain http; docker-compose.yml, which runs TLS, has its own https probe)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["npm", "run", "control-plane"]
