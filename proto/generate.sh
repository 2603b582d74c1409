#!/usr/bin/env bash
# Regenerates proto/gen from proto/hcp/v1/*.proto with protoc (Debian: protobuf-compiler) and
# ts-proto (npm). The generated code is committed, so only a change to a .proto needs this.
set -euo pipefail
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
rm -rf gen && mkdir -p gen
protoc \
  --plugin=protoc-gen-ts_proto=../node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=gen \
  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,importSuffix=.js,forceLong=number,oneof=unions-value,useOptionals=none,outputTypeRegistry=false \
  -I . hcp/v1/*.proto
echo "generated: $(find gen -name '*.ts' | sort | tr '\n' ' ')"
