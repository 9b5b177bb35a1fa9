# Real traffic: a client network namespace reaches an IPVS NAT service whose
# backends are busybox httpd in two other namespaces (veth pairs inside the
# guest, the VIP on a dummy interface, nothing leaves the VM). The service is
# configured by `clusterf apply`; wrr with weights 3:1 must split 40 requests
# 30:10 (wrr is deterministic; a tolerance of 4 allows for a stray retry).
# Then the weights are flipped to 1:3 by a second apply, in place.
. "$SCENARIO_LIB"
need_clusterf apply
traffic_network

# --- config -------------------------------------------------------------------
write_config() { # weight1 weight2
    mkdir -p /tmp/cfg/services
    cat >/tmp/cfg/services/web.yaml <<Y
frontend:
  ipv4: 10.107.107.107
  tcp: 80
scheduler: wrr
backends:
  b1:
    ipv4: 10.3.1.1
    tcp: 80
    weight: $1
  b2:
    ipv4: 10.3.2.1
    tcp: 80
    weight: $2
Y
}

write_config 3 1
expect_code "apply weights 3:1" 0 clusterf apply --config-path /tmp/cfg
ipvsadm -S -n
count 40
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"
within "b1 share at 3:1" "$n1" 30 4
within "b2 share at 3:1" "$n2" 10 4

write_config 1 3
expect_code "apply weights 1:3" 0 clusterf apply --config-path /tmp/cfg
ipvsadm -S -n
count 40
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"
within "b1 share at 1:3" "$n1" 10 4
within "b2 share at 1:3" "$n2" 30 4
expect_code "re-plan is empty" 0 clusterf plan --config-path /tmp/cfg --detailed-exitcode
finish
