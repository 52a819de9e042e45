# Ferry server and worker image (the same image; the command picks the process).
FROM node:20-bookworm-slim AS build
WORKDIR /ferry
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig*.json nest-cli.json ./
COPY libs ./libs
COPY apps ./apps
RUN npm ci && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /ferry
ENV NODE_ENV=production DATA_DIR=/data LOG_FORMAT=json
COPY --from=build /ferry ./
VOLUME /data
EXPOSE 8080 1883
CMD ["node", "apps/server/dist/main.js"]
