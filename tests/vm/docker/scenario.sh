# `clusterf docker` against a real Docker Engine (Debian's 20.10, API 1.41)
# and a real etcd, inside the test guest; all real-engine checks in one boot.
#
# Needs /data/dockerroot (tests/vm/docker/build.sh) and /data/repo (a config
# repo with frontends for the services below). Run by tests/docker.rs:
#   tests/vm/run.sh tests/vm/docker/scenario.sh target/vm-cache/docker/root:dockerroot tests/vm/docker/repo:repo
# It only checks; it leaves nothing behind (the guest powers off).
. "$SCENARIO_LIB"
set -u

t0=$(date +%s)
since() { echo "$(($(date +%s) - t0))s"; }

# --- the Docker layer ------------------------------------------------------
cd /data/dockerroot || die "no /data/dockerroot"
find . -type d | while read -r d; do mkdir -p "/$d"; done
find . ! -type d | while read -r f; do mv "$f" "/$f"; done
cd /data
depmod
for m in $(cat /data/docker-modules); do
    modprobe "$m" || die "modprobe $m"
done
mount -t cgroup2 none /sys/fs/cgroup || die "mount cgroup2"
mount -t tmpfs tmpfs /var/lib/docker
mkdir -p /etc/docker /var/lib/etcd
echo 1 >/proc/sys/net/ipv4/ip_forward
ip link set lo up

etcd --data-dir /var/lib/etcd/data --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    >/tmp/etcd.log 2>&1 &
DOCKER_RAMDISK=true dockerd >/tmp/dockerd.log 2>&1 &

DOCKERD=$!
until [ -S /var/run/docker.sock ] && timeout 10 docker version >/dev/null 2>&1; do
    if ! kill -0 $DOCKERD 2>/dev/null || [ $(($(date +%s) - t0)) -gt 300 ]; then
        tail -n 30 /tmp/dockerd.log
        die "dockerd not ready after $(since)"
    fi
    sleep 1
done
ok "dockerd ready after $(since) ($(docker version -f '{{.Server.Version}} api {{.Server.APIVersion}}'))"
until etcdctl endpoint health >/dev/null 2>&1; do sleep 0.2; done
docker import /data/busybox.tar bb >/dev/null || die "docker import"

ETCD=http://127.0.0.1:2379
get() { etcdctl get --print-value-only "$1"; }
# wait_for SECONDS DESCRIPTION CMD...: until CMD succeeds.
wait_for() {
    _limit=$1 _what=$2
    shift 2
    _end=$(($(date +%s) + _limit))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$_end" ]; then
            fail "$_what (not within ${_limit}s)"
            return 1
        fi
        sleep 0.2
    done
    ok "$_what ($(since))"
}
value_is() { [ "$(get "$1")" = "$2" ]; }
absent() { [ -z "$(etcdctl get --keys-only "$1")" ]; }
no_keys() { [ -z "$(etcdctl get --keys-only --prefix "$1")" ]; }
ip_of() { docker inspect -f '{{.NetworkSettings.IPAddress}}' "$1"; }
id_of() { docker inspect -f '{{.Id}}' "$1"; }

# --- containers --------------------------------------------------------------
L=net.qmsk.clusterf
docker run -d --name web --expose 8080 -l $L.service=web -l $L.backend.tcp=8080 \
    bb httpd -f -p 8080 >/dev/null || die "docker run web"
docker run -d --name multi --expose 80 --expose 53/udp -l "$L.service=web dns" \
    -l "$L.backend:web.tcp=80" -l "$L.backend:dns.udp=53" -l $L.backend.weight=20 \
    bb httpd -f -p 80 >/dev/null || die "docker run multi"
docker run -d --name unexposed -l $L.service=web -l $L.backend.tcp=9999 \
    bb sleep 600 >/dev/null || die "docker run unexposed"
docker run -d --name pub --expose 8080 -p 8081:8080 -l $L.service=pubweb \
    -l $L.backend.tcp=8080 bb httpd -f -p 8080 >/dev/null || die "docker run pub"
ok "4 containers running ($(since))"
WEB=$(id_of web) MULTI=$(id_of multi) UNEXP=$(id_of unexposed) PUB=$(id_of pub)
WEB_IP=$(ip_of web) MULTI_IP=$(ip_of multi) PUB_IP=$(ip_of pub)

# --- --dry-run: the key set on stdout, no etcd needed -------------------------
clusterf docker --dry-run --publisher-id vm >/tmp/dry.json 2>/tmp/dry.err
if grep -q "\"services/web/backends/$WEB\": {" /tmp/dry.json &&
    grep -q "\"services/dns/backends/$MULTI\": {" /tmp/dry.json &&
    ! grep -q "$UNEXP" /tmp/dry.json; then
    ok "--dry-run prints the key set"
else
    fail "--dry-run"; cat /tmp/dry.json /tmp/dry.err
fi

# --- the publisher -----------------------------------------------------------
publisher() {
    clusterf docker --etcd $ETCD --publisher-id vm --ttl 15 \
        --advertise-route-prefix 172.17.0.0/16 --advertise-route-method masq \
        >>/tmp/pub.out 2>>/tmp/pub.log &
    PUBLISHER=$!
}
publisher
wait_for 90 "web published" value_is /clusterf/services/web/backends/$WEB \
    "{\"ipv4\":\"$WEB_IP\",\"tcp\":8080,\"weight\":10}"
wait_for 15 "multi published in web" value_is /clusterf/services/web/backends/$MULTI \
    "{\"ipv4\":\"$MULTI_IP\",\"tcp\":80,\"weight\":20}"
wait_for 15 "multi published in dns" value_is /clusterf/services/dns/backends/$MULTI \
    "{\"ipv4\":\"$MULTI_IP\",\"udp\":53,\"weight\":20}"
wait_for 15 "the route advertised" value_is /clusterf/routes/vm \
    '{"Prefix":"172.17.0.0/16","IPVSMethod":"masq"}'
if absent /clusterf/services/web/backends/$UNEXP; then ok "unexposed port not published"; else fail "unexposed port published"; fi
if grep -q "container unexposed (${UNEXP%"${UNEXP#????????????}"}): label $L.backend.tcp=9999: service web: port 9999/tcp is not exposed" /tmp/pub.log; then
    ok "unexposed port warned about"
else
    fail "no warning for the unexposed port"; cat /tmp/pub.log
fi
if grep -q "api 1.41" /tmp/pub.log; then ok "api version negotiated down to 1.41"; else fail "api version"; grep docker /tmp/pub.log; fi

# --- the frontend sees exactly what was published -----------------------------
cat >/tmp/want.render <<EOF
-A -t 10.107.107.107:80 -s wlc
-a -t 10.107.107.107:80 -r $MULTI_IP:80 -m -w 20
-a -t 10.107.107.107:80 -r $WEB_IP:8080 -m -w 10
-A -u 10.107.107.53:53 -s wlc
-a -u 10.107.107.53:53 -r $MULTI_IP:53 -m -w 20
EOF
clusterf render --config-path /data/repo --etcd $ETCD --output ipvsadm 2>/tmp/render.err |
    sort >/tmp/got.render
sort /tmp/want.render >/tmp/want.sorted
expect_eq "render --etcd sees what was published" /tmp/want.sorted /tmp/got.render

# --- a signal the container survives does not drain it for good ------------
# busybox httpd runs as PID 1 without handlers: QUIT and TERM leave it running.
WEB_KEY=/clusterf/services/web/backends/$WEB
WEB_UP="{\"ipv4\":\"$WEB_IP\",\"tcp\":8080,\"weight\":10}"
WEB_DRAINED="{\"ipv4\":\"$WEB_IP\",\"tcp\":8080,\"weight\":0}"
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ]; }
# holds SECONDS DESCRIPTION CMD...: CMD succeeds all along.
holds() {
    _limit=$1 _what=$2
    shift 2
    _end=$(($(date +%s) + _limit))
    while [ "$(date +%s)" -lt "$_end" ]; do
        if ! "$@" >/dev/null 2>&1; then
            fail "$_what (broke after $((_limit - _end + $(date +%s)))s)"
            return 1
        fi
        sleep 0.2
    done
    ok "$_what ($(since))"
}
docker kill -s QUIT web >/dev/null
holds 8 "QUIT (a thread dump, not a stop) leaves web at weight 10" value_is "$WEB_KEY" "$WEB_UP"
docker kill -s TERM web >/dev/null
wait_for 15 "TERM (web's stop signal) drains web" value_is "$WEB_KEY" "$WEB_DRAINED"
running web && ok "web ignored the TERM" || fail "web died of the TERM"
wait_for 30 "web, still running after its stop timeout, is back at weight 10" \
    value_is "$WEB_KEY" "$WEB_UP"
running web || fail "web died of a signal"
if grep -q "container web (${WEB%"${WEB#????????????}"}) still runs 12s after its stop signal: not stopping, serving again" /tmp/pub.log; then
    ok "the publisher says web survived its stop signal"
else
    fail "no line about web surviving its stop signal"
fi

# --- a restart of the publisher neither duplicates nor flaps ------------------
# (within the TTL of 15 s: a restart under emulation takes a few seconds)
kill -TERM $PUBLISHER
wait $PUBLISHER
rev_before=$(etcdctl get --prefix /clusterf -w json | sed 's/.*"revision":\([0-9]*\).*/\1/')
keys_before=$(etcdctl get --prefix --keys-only /clusterf | sort)
publisher
wait_for 60 "restarted publisher adopted its lease" grep -q "adopted the previous run's lease" /tmp/pub.log
sleep 2
rev_after=$(etcdctl get --prefix /clusterf -w json | sed 's/.*"revision":\([0-9]*\).*/\1/')
keys_after=$(etcdctl get --prefix --keys-only /clusterf | sort)
if [ "$keys_before" = "$keys_after" ]; then ok "same keys after the restart"; else fail "keys changed across the restart"; fi
if [ "$rev_before" = "$rev_after" ]; then ok "no write at all across the restart (revision $rev_after)"; else fail "revision $rev_before -> $rev_after across the restart"; fi

# --- stop drains, removal deletes --------------------------------------------
docker stop -t 1 web >/dev/null
wait_for 30 "stopped web drained to weight 0" value_is /clusterf/services/web/backends/$WEB \
    "{\"ipv4\":\"$WEB_IP\",\"tcp\":8080,\"weight\":0}"
docker rm web >/dev/null
removed=$(date +%s)
wait_for 30 "removed web deleted" absent /clusterf/services/web/backends/$WEB &&
    echo "   (deleted $(($(date +%s) - removed))s after docker rm returned)"

# --- killing the publisher lets its keys expire after the TTL -----------------
kill -KILL $PUBLISHER
killed=$(date +%s)
wait_for 60 "killed publisher's keys expired" no_keys /clusterf/services/
if [ $(($(date +%s) - killed)) -ge 8 ]; then ok "keys lived until the ttl ran out"; else fail "keys vanished at once"; fi
absent /clusterf/routes/vm && ok "advertised route expired too" || fail "route still there"

# --- --published: host address and published host port -----------------------
clusterf docker --etcd $ETCD --etcd-prefix /published --publisher-id vmpub --ttl 5 \
    --published --host-address 192.0.2.10 --flush-on-exit >/dev/null 2>/tmp/pubmode.log &
P2=$!
wait_for 90 "--published uses host address and host port" \
    value_is /published/services/pubweb/backends/$PUB '{"ipv4":"192.0.2.10","tcp":8081,"weight":10}'
if absent /published/services/web/backends/$MULTI; then ok "unpublished ports skipped in --published mode"; else fail "multi published without -p"; fi
kill -TERM $P2
wait $P2
if no_keys /published/; then ok "--flush-on-exit removed every key at once"; else fail "keys left after --flush-on-exit"; fi

echo "scenario took $(since)"
if [ "$FAILS" -gt 0 ]; then
    echo "--- publisher log"; tail -n 40 /tmp/pub.log
    echo "--- published-mode log"; tail -n 20 /tmp/pubmode.log
    echo "--- render stderr"; cat /tmp/render.err
fi
finish
