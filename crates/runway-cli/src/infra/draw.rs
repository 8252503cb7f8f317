//! `runway infra draw`: an SVG diagram of an infrastructure, laid out in
//! layers like the seeds' figures — reverse proxies on top; the console and
//! one column per environment (balancers, zones with their front-ends, the
//! catalog); database servers at the bottom; pipelines as a legend.
//!
//! Hand-written SVG from a fixed layered layout: no layout engine, so the
//! tests need nothing installed and the same file always draws the same.

use std::collections::HashMap;
use std::fmt::Write;

use super::Infra;

const MARGIN: i64 = 20;
const FRONTEND_W: i64 = 96;
const FRONTEND_GAP: i64 = 10;
const ZONE_PAD: i64 = 10;
const COLUMN_GAP: i64 = 30;
const PROXY_Y: i64 = 60;
const ENV_Y: i64 = 140;
const BALANCER_Y: i64 = 210;
const ZONE_Y: i64 = 270;
const CATALOG_Y: i64 = 370;
const ENV_BOTTOM: i64 = 400;
const DB_Y: i64 = 460;

/// Escapes text for SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Svg {
    body: String,
}

impl Svg {
    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, class: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" class="{class}"/>"#
        );
    }

    fn text(&mut self, x: i64, y: i64, text: &str, class: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x}" y="{y}" class="{class}">{}</text>"#,
            esc(text)
        );
    }

    fn line(&mut self, from: (i64, i64), to: (i64, i64), class: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="{class}"/>"#,
            from.0, from.1, to.0, to.1
        );
    }
}

/// The diagram of `infra` as an SVG document.
pub fn draw(infra: &Infra) -> String {
    let mut svg = Svg {
        body: String::new(),
    };
    // Column 0: the console; then one column per environment.
    let mut x = MARGIN;
    let console_x = x;
    let console_w = 180;
    x += console_w + COLUMN_GAP;

    // Where things are, for the connecting lines.
    let mut env_top: HashMap<String, (i64, i64)> = HashMap::new();
    let mut zone_top: HashMap<(String, String), (i64, i64)> = HashMap::new();
    let mut catalog_anchor: Vec<(String, (i64, i64))> = Vec::new();

    for env in &infra.environment {
        let e = env.get_ref();
        let name = e.name.get_ref();
        let zones_w: i64 = e
            .zone
            .iter()
            .map(|z| zone_width(z.get_ref().frontends.get_ref().len()))
            .sum::<i64>()
            + FRONTEND_GAP * (e.zone.len() as i64 - 1).max(0);
        let width = zones_w.max(200) + 2 * ZONE_PAD;
        let class = if e.production { "env prod" } else { "env" };
        svg.rect(x, ENV_Y - 10, width, ENV_BOTTOM - ENV_Y + 10, class);
        svg.text(x + 10, ENV_Y + 12, name, "title");
        let mode = match e.mode.get_ref() {
            super::Mode::Standalone => "standalone",
            super::Mode::Farm => "farm",
        };
        let subtitle = match &e.hostname {
            Some(h) => format!("{mode} · {}", h.get_ref()),
            None => mode.to_string(),
        };
        svg.text(x + 10, ENV_Y + 30, &subtitle, "small");
        svg.text(x + 10, ENV_Y + 46, e.address.get_ref(), "small");
        env_top.insert(name.clone(), (x + width / 2, ENV_Y - 10));

        let mut zx = x + ZONE_PAD;
        for zone in &e.zone {
            let z = zone.get_ref();
            let frontends = z.frontends.get_ref();
            let zw = zone_width(frontends.len());
            svg.rect(zx, ZONE_Y, zw, 84, "zone");
            svg.text(
                zx + 6,
                ZONE_Y + 14,
                &format!("zone {} · {}", z.name.get_ref(), z.address.get_ref()),
                "small",
            );
            let mut fx = zx + ZONE_PAD;
            for frontend in frontends {
                svg.rect(fx, ZONE_Y + 26, FRONTEND_W, 44, "frontend");
                svg.text(fx + 6, ZONE_Y + 44, "front-end", "small");
                svg.text(fx + 6, ZONE_Y + 60, frontend.get_ref(), "label");
                fx += FRONTEND_W + FRONTEND_GAP;
            }
            let top = (zx + zw / 2, ZONE_Y);
            zone_top.insert((name.clone(), z.name.get_ref().clone()), top);
            // The zone's balancer, above it.
            if let Some(balancer) = infra.balancer.iter().find(|b| {
                b.get_ref().environment.get_ref() == name
                    && b.get_ref().zone.get_ref() == z.name.get_ref()
            }) {
                let bw = zw.min(180);
                let bx = zx + (zw - bw) / 2;
                svg.rect(bx, BALANCER_Y, bw, 40, "balancer");
                svg.text(bx + 6, BALANCER_Y + 16, "balancer", "small");
                svg.text(
                    bx + 6,
                    BALANCER_Y + 32,
                    balancer.get_ref().name.get_ref(),
                    "label",
                );
                svg.line((zx + zw / 2, BALANCER_Y + 40), top, "link");
                zone_top.insert(
                    (name.clone(), z.name.get_ref().clone()),
                    (zx + zw / 2, BALANCER_Y),
                );
            }
            zx += zw + FRONTEND_GAP;
        }
        let db = e.database.get_ref();
        svg.text(
            x + 10,
            CATALOG_Y,
            &format!(
                "catalog {} on {}",
                db.catalog.get_ref(),
                db.server.get_ref()
            ),
            "small",
        );
        catalog_anchor.push((db.server.get_ref().clone(), (x + width / 2, ENV_BOTTOM)));
        x += width + COLUMN_GAP;
    }

    // The console, with a line to every environment it manages.
    if let Some(console) = &infra.console {
        let c = console.get_ref();
        svg.rect(
            console_x,
            ENV_Y - 10,
            console_w,
            ENV_BOTTOM - ENV_Y + 10,
            "console",
        );
        svg.text(console_x + 10, ENV_Y + 12, "console (LifeTime)", "title");
        svg.text(
            console_x + 10,
            ENV_Y + 30,
            &format!("server {}", c.server.get_ref()),
            "small",
        );
        if let Some(address) = &c.address {
            svg.text(console_x + 10, ENV_Y + 46, address.get_ref(), "small");
        }
        let db = c.database.get_ref();
        svg.text(
            console_x + 10,
            CATALOG_Y,
            &format!(
                "catalog {} on {}",
                db.catalog.get_ref(),
                db.server.get_ref()
            ),
            "small",
        );
        catalog_anchor.push((
            db.server.get_ref().clone(),
            (console_x + console_w / 2, ENV_BOTTOM),
        ));
        for env in &infra.environment {
            if let Some(top) = env_top.get(env.get_ref().name.get_ref()) {
                svg.line((console_x + console_w / 2, ENV_Y - 10), *top, "manage");
            }
        }
    }

    // Reverse proxies across the top, each linked to the zones it routes to.
    let mut px = MARGIN;
    for proxy in &infra.reverse_proxy {
        let p = proxy.get_ref();
        let w = 220;
        svg.rect(px, PROXY_Y - 30, w, 44, "proxy");
        svg.text(
            px + 6,
            PROXY_Y - 14,
            &format!("reverse proxy {}", p.name.get_ref()),
            "small",
        );
        svg.text(px + 6, PROXY_Y + 2, p.hostname.get_ref(), "label");
        for route in p.routes.get_ref() {
            let r = route.get_ref();
            if let Some(to) =
                zone_top.get(&(r.environment.get_ref().clone(), r.zone.get_ref().clone()))
            {
                svg.line((px + w / 2, PROXY_Y + 14), *to, "route");
            }
        }
        px += w + COLUMN_GAP;
    }
    x = x.max(px);

    // Database servers along the bottom.
    let mut dx = MARGIN;
    let mut db_at: HashMap<String, (i64, i64)> = HashMap::new();
    for db in &infra.database_server {
        let d = db.get_ref();
        let w = 170;
        svg.rect(dx, DB_Y, w, 46, "database");
        svg.text(dx + 6, DB_Y + 18, "database server", "small");
        svg.text(dx + 6, DB_Y + 36, d.name.get_ref(), "label");
        db_at.insert(d.name.get_ref().clone(), (dx + w / 2, DB_Y));
        dx += w + COLUMN_GAP;
    }
    for db in &infra.database_server {
        let d = db.get_ref();
        if let (Some(primary), Some(me)) = (
            d.replica_of.as_ref().and_then(|p| db_at.get(p.get_ref())),
            db_at.get(d.name.get_ref()),
        ) {
            svg.line((primary.0, DB_Y + 46), (me.0, DB_Y + 46), "replica");
        }
    }
    for (server, from) in &catalog_anchor {
        if let Some(to) = db_at.get(server) {
            svg.line(*from, *to, "catalog");
        }
    }
    x = x.max(dx);

    // Pipelines as a legend.
    let mut y = DB_Y + 80;
    for pipeline in &infra.pipeline {
        let p = pipeline.get_ref();
        let chain: Vec<&str> = p
            .environments
            .get_ref()
            .iter()
            .map(|e| e.get_ref().as_str())
            .collect();
        svg.text(
            MARGIN,
            y,
            &format!("pipeline {}: {}", p.name.get_ref(), chain.join(" → ")),
            "label",
        );
        y += 20;
    }

    let width = x + MARGIN;
    let height = y + MARGIN;
    let title = infra.name.as_deref().unwrap_or("Runway infrastructure");
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    out.push_str(
        "<style>\
         rect{fill:#fff;stroke:#445;stroke-width:1.2}\
         .env{fill:#f4f7fb}.prod{fill:#fbf3f0}.console{fill:#eef6ee}\
         .zone{fill:none;stroke-dasharray:4 3}.frontend{fill:#e6eefc}\
         .balancer{fill:#fff4d6}.proxy{fill:#efe6fb}.database{fill:#e9f5f5}\
         line{stroke:#667;stroke-width:1.2}.manage{stroke-dasharray:2 4}\
         .replica{stroke-dasharray:6 3;stroke:#a33}.route{stroke:#74a}\
         .title{font-size:14px;font-weight:bold}.label{font-size:12px}.small{font-size:10px;fill:#334}\
         </style>\n",
    );
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="18" class="title">{}</text>"#,
        esc(title)
    );
    out.push_str(&svg.body);
    out.push_str("</svg>\n");
    out
}

fn zone_width(frontends: usize) -> i64 {
    let n = frontends.max(1) as i64;
    n * FRONTEND_W + (n - 1) * FRONTEND_GAP + 2 * ZONE_PAD
}
