//! The render bench's synthetic repos (`benches/render.rs`, and the YAML
//! shape of `benches/state.rs`): N services, each a dual-stack TCP+UDP
//! frontend with 4 static backends, plus 100 routes, in the YAML layout or
//! the original JSON tree; and an overlay adding 6 backends a service.

#![allow(dead_code)] // each bench uses a part

use clusterf::tree::Tree;

pub const STATIC: u32 = 4;
pub const OVERLAY: u32 = 6;
pub const ROUTES: u32 = 100;

pub fn ip4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

pub fn yaml_repo(services: u32) -> Tree {
    let mut t = Tree::new("bench-yaml");
    t.insert("clusterf.yaml", "scheduler: wlc\nmethod: masq\n");
    for i in 0..services {
        let mut doc = format!(
            "frontend:\n  ipv4: {}\n  ipv6: \"2001:db8::{:x}\"\n  tcp: 80\n  udp: 53\nbackends:\n",
            ip4(0x0a00_0000 + i),
            i + 1
        );
        for j in 0..STATIC {
            doc.push_str(&format!(
                "  b{j}: {{ipv4: {}, ipv6: \"2001:db8:1::{:x}:{:x}\", tcp: 8080, udp: 5353, weight: {}}}\n",
                ip4(0x6400_0000 + i * 16 + j),
                (i * 16 + j + 1) >> 16,
                (i * 16 + j + 1) & 0xffff,
                j + 1
            ));
        }
        t.insert(format!("services/svc-{i}.yaml"), doc);
    }
    for r in 0..ROUTES {
        t.insert(
            format!("routes/r{r}.yaml"),
            format!(
                "prefix: {}/16\nmethod: {}\n",
                ip4(0x6400_0000 + (r << 16)),
                ["masq", "droute", "tunnel"][r as usize % 3]
            ),
        );
    }
    t
}

pub fn json_repo(services: u32) -> Tree {
    let mut t = Tree::new("bench-json");
    for i in 0..services {
        t.insert(
            format!("services/svc-{i}/frontend"),
            format!(
                r#"{{"ipv4": "{}", "ipv6": "2001:db8::{:x}", "tcp": 80, "udp": 53}}"#,
                ip4(0x0a00_0000 + i),
                i + 1
            ),
        );
        for j in 0..STATIC {
            t.insert(
                format!("services/svc-{i}/backends/b{j}"),
                format!(
                    r#"{{"ipv4": "{}", "ipv6": "2001:db8:1::{:x}:{:x}", "tcp": 8080, "udp": 5353, "weight": {}}}"#,
                    ip4(0x6400_0000 + i * 16 + j),
                    (i * 16 + j + 1) >> 16,
                    (i * 16 + j + 1) & 0xffff,
                    j + 1
                ),
            );
        }
    }
    for r in 0..ROUTES {
        t.insert(
            format!("routes/r{r}"),
            format!(
                r#"{{"Prefix": "{}/16", "IPVSMethod": "{}"}}"#,
                ip4(0x6400_0000 + (r << 16)),
                ["masq", "droute", "tunnel"][r as usize % 3]
            ),
        );
    }
    t
}

pub fn overlay(services: u32) -> Tree {
    let mut t = Tree::new("bench-overlay");
    for i in 0..services {
        for j in 0..OVERLAY {
            t.insert(
                format!("services/svc-{i}/backends/docker-{j}"),
                format!(
                    r#"{{"ipv4": "{}", "tcp": 8080, "udp": 5353}}"#,
                    ip4(0xac10_0000 + i * 16 + j)
                ),
            );
        }
    }
    t
}
