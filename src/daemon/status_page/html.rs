//! The status page as HTML, from a [`Snapshot`]: one document with inline
//! CSS, no script, no external asset, a `<meta http-equiv="refresh">`
//! unless `refresh=0`, readable on a phone and in a text browser. Every
//! value from config, etcd, the kernel or an error goes through [`esc`].
//!
//! Must not: read anything but the snapshot.

use std::fmt::Write as _;

use super::snapshot::{DestRow, LastPass, Query, ServicePage, ServiceRow, Snapshot, VipSection};
use crate::fleet::Fleet;
use crate::fleet::view::age;
use crate::model::traffic::Traffic;

/// `s` with `&`, `<`, `>`, `"` and `'` written as character references:
/// safe in element content and in quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;padding:8px;max-width:1200px;color:#222}\
h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:16px 0 4px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:2px 6px;border-bottom:1px solid #eee;vertical-align:top}\
.wrap{overflow-x:auto}.num{text-align:right}.svc th{background:#f0f3f7;border-top:2px solid #ccd}\
.banner{background:#fde8e8;border:2px solid #c00;padding:6px 10px;margin:8px 0}.banner li{white-space:pre-wrap}\
.ok{color:#075}.bad{color:#c00;font-weight:bold}.warn{color:#a60;font-weight:bold}.muted{color:#777}\
pre{background:#f7f7f7;padding:6px;overflow-x:auto;font-size:12px}form{margin:6px 0}input[type=search]{width:16em}\
nav a{margin-right:8px}small{color:#666}";

/// The whole page.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, s);
    banner(&mut out, &s.problems);
    last_pass(&mut out, s.last_pass.as_ref(), s.now_ms);
    sources(&mut out, s);
    if let Some(v) = &s.vips {
        vips(&mut out, v);
    }
    services(&mut out, s);
    diagnostics(&mut out, &s.diagnostics);
    plan(&mut out, s);
    if let Some(fleet) = &s.fleet {
        fleet_table(&mut out, fleet, s.now_ms);
    }
    foot(&mut out, s);
    out
}

fn head(out: &mut String, s: &Snapshot) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    if s.query.refresh > 0 {
        let _ = write!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            s.query.refresh
        );
    }
    let _ = write!(
        out,
        "<title>clusterf status</title><style>{STYLE}</style></head><body>\n\
         <h1>clusterf status</h1><p><small>version {} · {} UTC · ",
        esc(&s.version),
        utc(s.now_ms)
    );
    if s.query.refresh > 0 {
        let off = Query {
            refresh: 0,
            ..s.query.clone()
        };
        let _ = write!(
            out,
            "refreshes every {}s (<a href=\"{}\">stop</a>)",
            s.query.refresh,
            esc(&off.to_url(s.query.page))
        );
    } else {
        let on = Query {
            refresh: super::snapshot::REFRESH,
            ..s.query.clone()
        };
        let _ = write!(
            out,
            "not refreshing (<a href=\"{}\">refresh</a>)",
            esc(&on.to_url(s.query.page))
        );
    }
    out.push_str("</small></p>\n");
}

fn banner(out: &mut String, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    out.push_str("<div class=\"banner\" id=\"errors\" role=\"alert\"><strong>Errors</strong><ul>");
    for p in problems {
        let _ = write!(out, "<li>{}</li>", esc(p));
    }
    out.push_str("</ul></div>\n");
}

fn last_pass(out: &mut String, last: Option<&LastPass>, now_ms: u64) {
    out.push_str("<h2 id=\"last-pass\">Last pass</h2>");
    let Some(p) = last else {
        out.push_str("<p class=\"muted\">no pass yet</p>\n");
        return;
    };
    let outcome = if p.ok {
        "<span class=\"ok\">ok</span>".to_string()
    } else {
        "<span class=\"bad\">failed</span>".to_string()
    };
    out.push_str("<div class=\"wrap\"><table>");
    let rows: [(&str, String); 7] = [
        ("outcome", outcome),
        (
            "time",
            format!(
                "{} UTC ({} ago)",
                utc(p.at_ms),
                age(now_ms.saturating_sub(p.at_ms))
            ),
        ),
        ("duration", format!("{} ms", p.duration_ms)),
        ("changes applied", p.changes.to_string()),
        ("commit", esc(p.commit.as_deref().unwrap_or("-"))),
        (
            "etcd revision",
            esc(p.etcd_revision.as_deref().unwrap_or("-")),
        ),
        (
            "passes",
            format!("{} ok, {} failed", p.passes_ok, p.passes_failed),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    out.push_str("</table></div>\n");
}

fn sources(out: &mut String, s: &Snapshot) {
    out.push_str("<h2 id=\"sources\">Sources</h2><div class=\"wrap\"><table><tr><th>source</th><th>reads</th><th>last good read</th><th>error</th></tr>");
    for r in &s.sources {
        let fresh = match r.staleness_s {
            Some(secs) => format!("{} ago", age((secs * 1000.0) as u64)),
            None => "never".to_string(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"bad\">{}</td></tr>",
            esc(&r.source),
            esc(&r.description),
            fresh,
            esc(r.error.as_deref().unwrap_or(""))
        );
    }
    let counters = match s.counters.age_ms {
        Some(ms) => format!("from the kernel read {} ago", age(ms)),
        None => "none (no kernel read kept since the last failed pass)".to_string(),
    };
    let traffic = match s.counters.traffic_read_ms {
        Some(ms) => format!("read {} ago", age(s.now_ms.saturating_sub(ms))),
        None => "not read (--traffic-interval 0, or no read yet)".to_string(),
    };
    let _ = writeln!(
        out,
        "</table></div><p><small>Connection counters: {counters}. Traffic counters: {traffic}. Health checks: {} targets checked, {} down.</small></p>",
        s.health.checked, s.health.down
    );
}

fn services(out: &mut String, s: &Snapshot) {
    out.push_str("<h2 id=\"services\">Services</h2>");
    let Some(page) = &s.services else {
        out.push_str(
            "<p class=\"warn\">A pass is running: the services are shown again when it ends.</p>\n",
        );
        return;
    };
    if page.render_failed {
        out.push_str("<p class=\"warn\">The config has errors: the kernel keeps what the last successful pass applied; below is what the valid part of the config gives.</p>");
    }
    search_form(out, &s.query);
    let _ = write!(
        out,
        "<p>{} services, {} with problems; {} match.</p>",
        page.total, page.with_problems, page.matched
    );
    pager(out, page, &s.query);
    out.push_str("<div class=\"wrap\"><table id=\"service-table\"><tr><th>dest</th><th class=\"num\">weight</th><th>method</th><th>state</th><th class=\"num\">active</th><th class=\"num\">inactive</th><th>traffic</th><th>origin</th><th>why</th></tr>\n");
    for row in &page.services {
        service_rows(out, row);
    }
    out.push_str("</table></div>");
    pager(out, page, &s.query);
}

/// The VIP interface's addresses: on it and wanted, missing (wanted, not
/// on it: not added yet, or withdrawn), or leaving (on it, not wanted).
fn vips(out: &mut String, v: &VipSection) {
    let _ = write!(out, "<h2 id=\"vips\">VIPs on {}</h2>", esc(&v.interface));
    if v.vips.is_empty() {
        out.push_str("<p>No VIP: no owned service has an address.</p>");
        return;
    }
    out.push_str("<div class=\"wrap\"><table><tr><th>VIP</th><th>state</th></tr>");
    for r in &v.vips {
        let (class, state) = match (r.desired, r.present) {
            (true, true) => ("ok", "present"),
            (true, false) => ("bad", "missing"),
            (false, _) => ("warn", "leaving"),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{state}</td></tr>",
            esc(&r.vip)
        );
    }
    out.push_str("</table></div>\n");
}

fn search_form(out: &mut String, q: &Query) {
    let _ = write!(
        out,
        "<form method=\"get\" action=\"\"><label>Search <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"address or name\"></label> \
         <label><input type=\"checkbox\" name=\"only\" value=\"problems\"{}> only problems</label> \
         <input type=\"hidden\" name=\"per_page\" value=\"{}\"><input type=\"hidden\" name=\"refresh\" value=\"{}\"> \
         <button type=\"submit\">Show</button></form>",
        esc(&q.q),
        if q.only_problems { " checked" } else { "" },
        q.per_page,
        q.refresh
    );
}

fn pager(out: &mut String, page: &ServicePage, q: &Query) {
    if page.pages <= 1 {
        return;
    }
    out.push_str("<nav>");
    if page.page > 1 {
        let _ = write!(
            out,
            "<a href=\"{}\">« previous</a>",
            esc(&q.to_url(page.page - 1))
        );
    }
    let _ = write!(out, "page {} of {}", page.page, page.pages);
    if page.page < page.pages {
        let _ = write!(
            out,
            " <a href=\"{}\">next »</a>",
            esc(&q.to_url(page.page + 1))
        );
    }
    out.push_str("</nav>");
}

fn service_rows(out: &mut String, row: &ServiceRow) {
    let names = if !row.names.is_empty() {
        row.names.join(", ")
    } else if row.dests.iter().all(|d| d.state == "draining") {
        "(kept for draining dests)".to_string()
    } else {
        "(as the kernel has it: not in the invalid config)".to_string()
    };
    let traffic = row
        .traffic
        .map(|t| format!(" · {}", traffic_text(&t, true)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<tr class=\"svc\"><th colspan=\"9\">{}{} <small>{} · {}{}</small></th></tr>",
        if row.problem { "⚠ " } else { "" },
        esc(&row.service),
        esc(&names),
        esc(&row.scheduler),
        esc(&traffic)
    );
    if row.dests.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"bad\">no dests</td></tr>\n");
    }
    for d in &row.dests {
        dest_row(out, d);
    }
}

fn dest_row(out: &mut String, d: &DestRow) {
    let class = match d.state.as_str() {
        "up" | "fallback" => "ok",
        "draining" | "fail-open" | "kernel" | "fallback-serving" => "warn",
        _ => "bad",
    };
    let count = |n: Option<u32>| n.map_or("-".to_string(), |n| n.to_string());
    let origins: Vec<String> = d
        .origins
        .iter()
        .map(|o| {
            let route = o
                .route
                .as_deref()
                .map(|r| format!(", route {r}"))
                .unwrap_or_default();
            format!("{} ({}, weight {}{route})", o.backend, o.source(), o.weight)
        })
        .collect();
    let mut why = d.health.clone().unwrap_or_default();
    if let Some(drain) = &d.drain {
        if !why.is_empty() {
            why.push_str("; ");
        }
        let _ = write!(
            why,
            "draining since {} UTC, {} left",
            utc(drain.since_ms),
            age(drain.left_ms)
        );
    }
    let _ = writeln!(
        out,
        "<tr class=\"dest {}\"><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&d.state),
        esc(&d.dest),
        d.weight,
        esc(&d.method),
        esc(&d.state),
        count(d.active_conns),
        count(d.inactive_conns),
        esc(&d
            .traffic
            .map_or("-".to_string(), |t| traffic_text(&t, false))),
        esc(&origins.join("; ")),
        esc(&why)
    );
}

/// `1,234 connections (5/s), in 1.2 MB (3.4 kB/s), out 56 MB`: the
/// counters, with the kernel's rates when `rates`.
fn traffic_text(t: &Traffic, rates: bool) -> String {
    if rates {
        format!(
            "{} connections ({}/s), in {} ({}/s), out {} ({}/s)",
            t.connections,
            t.connection_rate,
            bytes(t.bytes_in),
            bytes(t.byte_rate_in),
            bytes(t.bytes_out),
            bytes(t.byte_rate_out)
        )
    } else {
        format!(
            "{} conns, in {}, out {}",
            t.connections,
            bytes(t.bytes_in),
            bytes(t.bytes_out)
        )
    }
}

/// A byte count in SI units: `512 B`, `1.2 kB`, `56.0 MB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn diagnostics(out: &mut String, diags: &[String]) {
    out.push_str("<h2 id=\"diagnostics\">Diagnostics</h2>");
    if diags.is_empty() {
        out.push_str("<p class=\"ok\">none</p>\n");
        return;
    }
    out.push_str("<ul>");
    for d in diags {
        let class = if d.starts_with("warning: ") {
            "warn"
        } else {
            "bad"
        };
        let _ = write!(out, "<li class=\"{class}\">{}</li>", esc(d));
    }
    out.push_str("</ul>\n");
}

fn plan(out: &mut String, s: &Snapshot) {
    out.push_str("<h2 id=\"plan\">Last applied plan</h2>");
    match &s.last_plan {
        None => out.push_str("<p class=\"muted\">no change applied since the daemon started</p>\n"),
        Some(p) => {
            let _ = write!(
                out,
                "<p><small>applied {} UTC</small></p><pre>{}</pre>",
                utc(p.at_ms),
                esc(&p.text)
            );
            if p.omitted_lines > 0 {
                let _ = write!(
                    out,
                    "<p><small>… {} more lines (in the log)</small></p>",
                    p.omitted_lines
                );
            }
            out.push('\n');
        }
    }
}

fn fleet_table(out: &mut String, fleet: &Fleet, now_ms: u64) {
    out.push_str("<h2 id=\"fleet\">Fleet status</h2><p><small>This frontend's own record; <code>clusterf status</code> shows every frontend.</small></p>");
    out.push_str("<div class=\"wrap\"><table><tr><th>frontend</th><th>applied</th><th>commit</th><th>services</th><th>dests</th><th>unhealthy</th><th>drains</th><th>last pass</th><th>error</th></tr>");
    for row in &fleet.frontends {
        let Some(st) = &row.status else { continue };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"bad\">{}</td></tr>",
            esc(&row.frontend),
            esc(short(st.applied.as_deref().unwrap_or("-"))),
            esc(short(st.commit.as_deref().unwrap_or("-"))),
            st.services,
            st.dests,
            st.unhealthy_dests,
            st.drains,
            st.last_pass_ms.map_or("-".to_string(), |ms| format!(
                "{} ago",
                age(now_ms.saturating_sub(ms))
            )),
            esc(st.error.as_ref().map(|e| e.message.as_str()).unwrap_or(""))
        );
    }
    out.push_str("</table></div>\n");
}

/// A commit or hash cut to 12 characters.
fn short(s: &str) -> &str {
    s.char_indices().nth(12).map_or(s, |(i, _)| &s[..i])
}

fn foot(out: &mut String, s: &Snapshot) {
    let json = format!("status.json{}", s.query.to_url(s.query.page));
    let _ = writeln!(
        out,
        "<p><small><a href=\"{}\">this page as JSON</a> · <a href=\"metrics\">metrics</a> · <a href=\"health/checks\">health checks</a></small></p></body></html>",
        esc(&json)
    );
}

/// `2026-12-06 05:45:31` from Unix milliseconds.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status_page::snapshot::{
        Counters, DrainInfo, HealthSummary, PlanText, SourceRow, VipRow,
    };
    use crate::model::Provenance;

    const EVIL: &str = "<script>alert(\"x\")</script> & 'q'";
    const EVIL_ESCAPED: &str =
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;";

    /// A snapshot with `EVIL` in every value that comes from outside.
    fn snapshot() -> Snapshot {
        let dest = DestRow {
            dest: "10.1.0.1:80".into(),
            weight: 0,
            method: "masq".into(),
            state: "draining".into(),
            origins: vec![Provenance {
                backend: EVIL.into(),
                source: EVIL.into(),
                weight: 3,
                route: Some(EVIL.into()),
                fallback: false,
            }],
            active_conns: Some(4),
            inactive_conns: None,
            traffic: None,
            health: Some(EVIL.into()),
            drain: Some(DrainInfo {
                since_ms: 0,
                left_ms: 90_000,
            }),
        };
        Snapshot {
            format: 1,
            now_ms: 1_000_000,
            version: EVIL.into(),
            query: Query {
                q: EVIL.into(),
                ..Query::default()
            },
            problems: vec![EVIL.into()],
            last_pass: Some(LastPass {
                commit: Some(EVIL.into()),
                etcd_revision: Some(EVIL.into()),
                ..LastPass::default()
            }),
            sources: vec![SourceRow {
                source: "etcd".into(),
                description: EVIL.into(),
                staleness_s: Some(3.0),
                error: Some(EVIL.into()),
            }],
            services: Some(ServicePage {
                total: 1,
                with_problems: 1,
                matched: 1,
                page: 1,
                pages: 3,
                render_failed: false,
                services: vec![ServiceRow {
                    service: "tcp://10.0.0.1:80".into(),
                    names: vec![EVIL.into()],
                    scheduler: EVIL.into(),
                    problem: true,
                    traffic: None,
                    dests: vec![dest],
                }],
            }),
            counters: Counters {
                age_ms: Some(2000),
                traffic_read_ms: None,
            },
            health: HealthSummary::default(),
            last_plan: Some(PlanText::of(EVIL, 0)),
            diagnostics: vec![EVIL.into()],
            fleet: None,
            vips: None,
        }
    }

    #[test]
    fn the_vip_interface_lists_each_vip_present_missing_or_leaving() {
        let mut s = snapshot();
        assert!(!render(&s).contains("id=\"vips\""));
        let row = |vip: &str, desired, present| VipRow {
            vip: vip.into(),
            desired,
            present,
        };
        s.vips = Some(VipSection {
            interface: EVIL.into(),
            vips: vec![
                row("198.51.100.10/32", true, true),
                row("2001:db8::10/128", true, false),
                row("198.51.100.99/32", false, true),
            ],
        });
        let html = render(&s);
        for want in [
            "<td>198.51.100.10/32</td><td class=\"ok\">present</td>",
            "<td>2001:db8::10/128</td><td class=\"bad\">missing</td>",
            "<td>198.51.100.99/32</td><td class=\"warn\">leaving</td>",
        ] {
            assert!(html.contains(want), "no {want} in {html}");
        }
        assert!(html.contains(&format!("VIPs on {EVIL_ESCAPED}")));
    }

    #[test]
    fn traffic_shows_per_service_with_rates_and_per_dest_when_read() {
        let mut s = snapshot();
        let html = render(&s);
        assert!(html.contains("Traffic counters: not read"), "{html}");
        assert!(
            html.contains("<td class=\"num\">-</td><td>-</td>"),
            "{html}"
        );
        let page = s.services.as_mut().unwrap();
        page.services[0].traffic = Some(Traffic {
            connections: 1234,
            connection_rate: 5,
            bytes_in: 1_234_567,
            byte_rate_in: 3_400,
            bytes_out: 56_000_000_000,
            byte_rate_out: 999,
            ..Traffic::default()
        });
        page.services[0].dests[0].traffic = Some(Traffic {
            connections: 7,
            bytes_in: 512,
            bytes_out: 1_000,
            ..Traffic::default()
        });
        s.counters.traffic_read_ms = Some(s.now_ms - 4_000);
        let html = render(&s);
        for want in [
            "1234 connections (5/s), in 1.2 MB (3.4 kB/s), out 56.0 GB (999 B/s)",
            "<td>7 conns, in 512 B, out 1.0 kB</td>",
            "Traffic counters: read 4s ago",
        ] {
            assert!(html.contains(want), "no {want} in {html}");
        }
    }

    #[test]
    fn byte_counts_read_in_si_units() {
        for (n, want) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (999_949, "999.9 kB"),
            (999_950, "1.0 MB"),
            (u64::MAX, "18.4 EB"),
        ] {
            assert_eq!(bytes(n), want);
        }
    }

    #[test]
    fn every_outside_value_is_escaped() {
        assert_eq!(esc(EVIL), EVIL_ESCAPED);
        let html = render(&snapshot());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert(\""), "{html}");
        // problems, version, commit, revision, source, source error, query
        // (twice: the box and the links as percent-encoding), names,
        // scheduler, origin (backend, source, route), health, diagnostics,
        // plan.
        assert!(html.matches(EVIL_ESCAPED).count() >= 14, "{html}");
        assert!(html.contains("id=\"errors\""), "{html}");
    }

    #[test]
    fn the_page_has_no_script_refreshes_unless_told_and_links_its_pages() {
        let mut s = snapshot();
        s.query.q = "web".into();
        let html = render(&s);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(
            html.contains("href=\"?page=2&amp;per_page=50&amp;q=web\">next"),
            "{html}"
        );
        assert!(html.contains("page 1 of 3"));
        assert!(html.contains("<form method=\"get\""));
        assert!(
            html.contains("status.json?page=1&amp;per_page=50&amp;q=web"),
            "{html}"
        );
        assert!(html.contains("1m left"), "{html}");
        s.query.refresh = 0;
        assert!(!render(&s).contains("http-equiv"));
        assert!(!html.contains("<script") && !html.contains("src="));
    }

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_535_931_000), "2026-12-06 05:45:31");
    }
}
