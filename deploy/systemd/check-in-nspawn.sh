#!/usr/bin/env bash
# Runs the units for real, in a throwaway systemd container of this host (systemd-nspawn --volatile=yes: a tmpfs root
# with the host's /usr read-only, so nothing the container does reaches the host's /etc, /var or /tmp).
# Inside: the offline sandbox (from the sources) as the units' dynamic user, then
#   1. bridge-sync@sandbox.service (timer mode: its own credential) pushes the sandbox's events;
#   2. bridge.service answers /healthz, /readyz and /v1/runs (the run of step 1: one shared state directory);
#   3. bridge.service runs a sync itself (serve mode: the credential under its own unit name);
#   4. bridge-sync@sandbox.timer is scheduled; SIGTERM stops bridge.service with status 0.
# Needs root, systemd-nspawn (Debian: apt-get install -y systemd-container), node at /usr/bin/node and `npm ci` done.
# Usage: deploy/systemd/check-in-nspawn.sh    (exit 0 when every check passed; the container's console is printed)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "systemd-nspawn missing: apt-get install -y systemd-container" >&2; exit 2; }
[ -x /usr/bin/node ] || { echo "the units start /usr/bin/node, which does not exist here" >&2; exit 2; }

work=$(mktemp -d /tmp/bridge-nspawn-XXXXXX)
cleanup() {
  rm -rf "$work"
  # systemd-nspawn --keep-unit leaves empty sub-cgroups behind where no systemd runs the host.
  for hierarchy in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    for d in payload supervisor; do [ -d "$hierarchy/$d" ] && find "$hierarchy/$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  done
  return 0
}
trap cleanup EXIT

# /opt/bridge as the README installs it: the compiled CLI, package.json, mappings, node_modules. The units run it.
# The sandbox is not in it (tsconfig.build.json leaves src/sandbox out of dist/, as in the production image): it runs
# from this checkout's sources through tsx, the checkout bound read-only at /opt/bridge-src in the container.
mkdir -p "$work/opt" "$work/units/bridge.service.d" "$work/units/bridge-sync@sandbox.service.d"
node "$repo/node_modules/typescript/bin/tsc" -p "$repo/tsconfig.build.json" --outDir "$work/opt/dist"
cp "$repo/package.json" "$work/opt/" && cp -r "$repo/mappings" "$work/opt/"
ln -s "$repo/node_modules" "$work/opt/node_modules"

cp "$repo/deploy/systemd/bridge.service" "$repo/deploy/systemd/bridge-sync@.service" "$repo/deploy/systemd/bridge-sync@.timer" "$work/units/"
ln -s /dev/null "$work/units/systemd-firstboot.service"   # a fresh /etc would otherwise wait at the first-boot wizard
cat > "$work/units/bridge.service.d/check.conf" <<'EOF'
[Service]
# One LoadCredential= line per connector that bridge serve syncs (README: systemctl edit bridge.service).
LoadCredential=purview-app-secret-sandbox:/etc/bridge/credentials/purview-app-secret-sandbox
EOF
cat > "$work/units/bridge-sync@sandbox.service.d/check.conf" <<'EOF'
[Service]
# The sandbox's events are from 2026-11-01: a first window reaching back that far.
Environment=BRIDGE__connectors__0__fhir__initialLookbackHours=2000
EOF
cat > "$work/units/check.target" <<'EOF'
[Unit]
Description=bridge unit check
Requires=check.service
After=check.service
EOF
cat > "$work/units/check.service" <<'EOF'
[Unit]
After=basic.target
[Service]
Type=oneshot
ExecStart=/bin/bash /check/check.sh
EOF

cat > "$work/check.sh" <<'EOF'
#!/bin/bash
exec > /dev/console 2>&1
export SYSTEMD_PAGER= SYSTEMD_COLORS=0
pass() { echo "CHECK-PASS $*"; }
fail() { echo "CHECK-FAIL $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
yaml=/opt/bridge/node_modules/yaml
config=/etc/bridge/bridge.config.yaml
token=check-api-token-0123456789

systemd-run --unit=sandbox -p DynamicUser=yes -p User=bridge -p Group=bridge -p StateDirectory=bridge \
  -p WorkingDirectory=/opt/bridge-src /usr/bin/node --import tsx src/cli/main.ts sandbox --dir /var/lib/bridge/sandbox
for _ in $(seq 1 120); do [ -s /var/lib/bridge/sandbox/bridge.config.yaml ] && break; sleep 1; done
install -d -m 0700 /etc/bridge/credentials
for name in sandbox main; do install -m 0600 /var/lib/bridge/sandbox/purview-app-secret /etc/bridge/credentials/purview-app-secret-$name; done
( umask 077; echo "$token" > /etc/bridge/credentials/api-tokens )
# The sandbox's config with the secrets of deploy/systemd/bridge.config.yaml: systemd credentials.
node -e '
const y = require(process.argv[1]); const fs = require("fs");
const c = y.parse(fs.readFileSync("/var/lib/bridge/sandbox/bridge.config.yaml", "utf8"));
c.stateDir = "/var/lib/bridge/state";
c.connectors[0].purview.secret = { file: "/run/credentials/bridge-sync@sandbox.service/purview-app-secret-sandbox" };
c.server = { host: "127.0.0.1", port: 8080, apiTokens: { file: "/run/credentials/bridge.service/api-tokens" } };
fs.writeFileSync(process.argv[2], y.stringify(c));' "$yaml" "$config"

echo "=== 0. README step 4: the signing key, created as the units' user"
systemctl start dbus.service   # systemd-run --wait talks over D-Bus, which a real host runs
systemd-run --wait --pipe -p DynamicUser=yes -p User=bridge -p Group=bridge -p StateDirectory=bridge -p UMask=0077 \
  -E BRIDGE_KEYS_DIR=/var/lib/bridge/keys /usr/bin/node /opt/bridge/dist/cli/main.js keys generate --alg ES384
ls -la /var/lib/bridge/keys; stat -c '%a %U %n' /var/lib/bridge/keys/*.pem
check "the private key is 0600 and owned by the units' user" test "$(stat -c '%a %U' /var/lib/bridge/keys/*.pem)" = "600 bridge"

echo "=== 1. timer mode: bridge-sync@sandbox.service"
systemctl start bridge-sync@sandbox.service
check "bridge-sync@sandbox.service succeeded" test "$(systemctl show -P Result bridge-sync@sandbox.service)" = success
check "it ran as a dynamic user" test "$(systemctl show -P DynamicUser bridge-sync@sandbox.service)" = yes
journalctl -u bridge-sync@sandbox.service -o cat --no-pager | grep -v '^{' | tail -12
check "it pushed rows" journalctl -u bridge-sync@sandbox.service -o cat --no-pager --grep 'rows accepted +[1-9]'

echo "=== 2. bridge.service"
systemctl start bridge.service
for _ in $(seq 1 60); do node -e 'fetch("http://127.0.0.1:8080/healthz").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' && break; sleep 0.5; done
get() { node -e 'fetch(process.argv[1], { headers: { authorization: "Bearer " + process.argv[2] } }).then(async r => { console.log(r.status); console.log(await r.text()); }, e => console.log("error " + e.message))' "$@"; }
check "/healthz 200" test "$(get http://127.0.0.1:8080/healthz | head -1)" = 200
check "/readyz 200" test "$(get http://127.0.0.1:8080/readyz | head -1)" = 200
check "/v1/runs without a token: 401" test "$(get http://127.0.0.1:8080/v1/runs '' | head -1)" = 401
runs=$(get http://127.0.0.1:8080/v1/runs "$token")
check "/v1/runs lists the timer's run (shared state directory)" grep -q '"trigger":"cli"' <<<"$runs"
ls -la /run/credentials/bridge.service/

echo "=== 3. serve mode: bridge.service syncs with the credential under its own unit name"
node -e '
const y = require(process.argv[1]); const fs = require("fs");
const c = y.parse(fs.readFileSync(process.argv[2], "utf8"));
c.connectors[0].purview.secret = { file: "/run/credentials/bridge.service/purview-app-secret-sandbox" };
fs.writeFileSync(process.argv[2], y.stringify(c));' "$yaml" "$config"
systemctl stop bridge.service
rm -rf /var/lib/private/bridge/state   # the timer's run already pushed this window
systemctl start bridge.service
sleep 2
state=$(node -e '
const h = { authorization: "Bearer " + process.argv[1], "content-type": "application/json" };
(async () => {
  for (let i = 0; i < 50; i++) { try { await fetch("http://127.0.0.1:8080/healthz"); break; } catch { await new Promise((r) => setTimeout(r, 200)); } }
  const r = await fetch("http://127.0.0.1:8080/v1/connectors/sandbox/syncs", { method: "POST", headers: h, body: JSON.stringify({ since: "2026-11-01T00:00:00.000Z", until: "2026-11-02T00:00:00.000Z" }) });
  const { runId } = await r.json();
  for (let i = 0; i < 100; i++) {
    const run = await (await fetch("http://127.0.0.1:8080/v1/runs/" + runId, { headers: h })).json();
    if (run.state === "completed" || run.state === "failed") { console.log(run.state + " " + run.counts.rowsAcked); return; }
    await new Promise((r) => setTimeout(r, 500));
  }
  console.log("timeout");
})().catch((e) => console.log("error " + e.message));' "$token")
echo "serve-mode run: $state"
check "the run bridge serve started completed with rows" grep -qE '^completed [1-9]' <<<"$state"

echo "=== 4. timer and stop"
systemctl start bridge-sync@sandbox.timer
systemctl list-timers --all --no-pager | grep bridge-sync
check "bridge-sync@sandbox.timer is waiting" test "$(systemctl show -P ActiveState bridge-sync@sandbox.timer)" = active
systemctl stop bridge.service
check "SIGTERM: bridge.service exited 0" test "$(systemctl show -P ExecMainStatus bridge.service)" = 0
echo "CHECK-DONE"
systemctl poweroff --no-block
EOF

log="$work/console.log"
timeout 300 systemd-nspawn -q -D / --volatile=yes --private-network --register=no --keep-unit --console=read-only \
  --bind-ro=/etc/passwd --bind-ro=/etc/group --bind-ro=/etc/nsswitch.conf \
  --bind-ro="$work:/check" --bind-ro="$work/opt:/opt/bridge" --bind-ro="$repo/node_modules:$repo/node_modules" --bind-ro="$repo:/opt/bridge-src" \
  --bind-ro="$work/units:/etc/systemd/system" \
  -b -- --unit=check.target >"$log" 2>&1 || true
sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1b[=>]//g' "$log" | grep -vE '^\[  OK  \]|^ +(Starting|Mounting|Unmounting|Stopping|Stopped|Finished)' | grep -v '^\s*$' | sed -n '/=== 0\./,$p'
grep -q '^CHECK-DONE' "$log" || { echo "the check did not finish" >&2; exit 1; }
if grep -q '^CHECK-FAIL' "$log"; then exit 1; fi
echo "all checks passed"
