//! The console page at `/`: brokers, topics and partitions, consumer groups with their lag,
//! and produce/fetch rates, as one broker sees them.
//!
//! The page is complete as served (server-side HTML, readable with JavaScript off); a small
//! inline script then polls `/console.json` (the same `Console` snapshot) every two seconds,
//! redraws the tables and computes rates from the counters' differences. No external assets.

use serde::Serialize;

use crate::broker::Broker;

#[derive(Serialize)]
pub struct Console {
    pub node_id: i32,
    pub cluster_id: String,
    /// The metadata quorum's leader, as this node knows it.
    pub controller: Option<u64>,
    pub brokers: Vec<BrokerRow>,
    pub topics: Vec<TopicRow>,
    pub groups: Vec<GroupRow>,
    pub traffic: Traffic,
}

#[derive(Serialize)]
pub struct BrokerRow {
    pub id: i32,
    pub address: String,
    pub state: &'static str,
    pub controller: bool,
}

#[derive(Serialize)]
pub struct TopicRow {
    pub name: String,
    /// `__consumer_offsets`: shown apart, folded, so user topics come first.
    pub internal: bool,
    pub partitions: Vec<PartitionRow>,
}

/// Offsets and size are known only for partitions hosted here.
#[derive(Serialize)]
pub struct PartitionRow {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub high_watermark: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub size_bytes: Option<u64>,
}

#[derive(Serialize)]
pub struct GroupRow {
    pub group: String,
    pub state: &'static str,
    pub members: usize,
    pub lag: Vec<LagRow>,
}

#[derive(Serialize)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// -1: the partition is not hosted here.
    pub lag: i64,
}

/// Totals since start; the page turns them into rates.
#[derive(Serialize)]
pub struct Traffic {
    pub messages_in: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub produce_requests: u64,
    pub fetch_requests: u64,
}

impl Console {
    pub fn take(broker: &Broker) -> Console {
        use std::sync::atomic::Ordering::Relaxed;
        let image = broker.metadata.image();
        let controller = broker.controller.quorum().leader();
        let brokers = image
            .brokers
            .values()
            .map(|b| BrokerRow {
                id: b.id,
                address: format!("{}:{}", b.host, b.port),
                state: if b.fenced { "fenced" } else { "alive" },
                controller: controller == Some(b.id as u64),
            })
            .collect();
        let topics = image
            .topics
            .values()
            .map(|t| TopicRow {
                name: t.name.clone(),
                internal: t.internal,
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, state)| {
                        let hosted = broker.replicas.partition(&t.name, i as i32);
                        PartitionRow {
                            partition: i as i32,
                            leader: state.leader,
                            replicas: state.replicas.clone(),
                            isr: state.isr.clone(),
                            high_watermark: hosted.as_ref().map(|p| p.high_watermark()),
                            log_end_offset: hosted.as_ref().map(|p| p.log_end_offset()),
                            size_bytes: hosted.as_ref().map(|p| p.size_bytes()),
                        }
                    })
                    .collect(),
            })
            .collect();
        let lags = broker.groups.consumer_lag();
        let groups = broker
            .groups
            .list_groups()
            .into_iter()
            .map(|g| GroupRow {
                members: broker.groups.describe_group(&g.group_id).members.len(),
                lag: lags
                    .iter()
                    .filter(|l| l.group == g.group_id)
                    .map(|l| LagRow {
                        topic: l.topic.clone(),
                        partition: l.partition,
                        committed: l.committed,
                        lag: l.lag,
                    })
                    .collect(),
                group: g.group_id,
                state: g.state,
            })
            .collect();
        let mut traffic = Traffic {
            messages_in: 0,
            bytes_in: 0,
            bytes_out: 0,
            produce_requests: 0,
            fetch_requests: 0,
        };
        for p in broker.replicas.all_partitions() {
            traffic.messages_in += p.traffic.messages_in.load(Relaxed);
            traffic.bytes_in += p.traffic.bytes_in.load(Relaxed);
            traffic.bytes_out += p.traffic.bytes_out.load(Relaxed);
        }
        for (key, m) in broker.requests.used() {
            match key {
                kafka_protocol::messages::ApiKey::Produce => {
                    traffic.produce_requests = m.requests.load(Relaxed)
                }
                kafka_protocol::messages::ApiKey::Fetch => {
                    traffic.fetch_requests = m.requests.load(Relaxed)
                }
                _ => {}
            }
        }
        Console {
            node_id: broker.config.node_id,
            cluster_id: broker.metadata.cluster_id(),
            controller,
            brokers,
            topics,
            groups,
            traffic,
        }
    }

    /// The whole page.
    pub fn html(&self) -> String {
        let mut brokers = String::new();
        for b in &self.brokers {
            brokers += &format!(
                "<tr data-broker=\"{}\"><td>{}</td><td>{}</td><td class=\"state\">{}</td><td>{}</td></tr>\n",
                b.id,
                b.id,
                escape(&b.address),
                b.state,
                if b.controller { "controller" } else { "" }
            );
        }
        let (mut partitions, mut internal) = (String::new(), String::new());
        for t in &self.topics {
            let rows = if t.internal {
                &mut internal
            } else {
                &mut partitions
            };
            for p in &t.partitions {
                *rows += &format!(
                    "<tr data-topic=\"{t}\" data-partition=\"{}\"><td>{t}</td><td>{}</td>\
                     <td class=\"leader\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    p.partition,
                    p.partition,
                    p.leader,
                    ids(&p.replicas),
                    ids(&p.isr),
                    opt(p.high_watermark),
                    opt(p.log_end_offset),
                    opt(p.size_bytes),
                    t = escape(&t.name),
                );
            }
        }
        let mut groups = String::new();
        for g in &self.groups {
            let group = escape(&g.group);
            groups += &format!(
                "<tr data-group=\"{group}\"><td>{group}</td><td class=\"state\">{}</td><td>{}</td><td></td><td></td><td></td><td class=\"lag\">{}</td></tr>\n",
                g.state,
                g.members,
                g.lag.iter().map(|l| l.lag.max(0)).sum::<i64>()
            );
            for l in &g.lag {
                groups += &format!(
                    "<tr data-group=\"{group}\" data-topic=\"{}\" data-partition=\"{}\"><td></td><td></td><td></td>\
                     <td>{}</td><td>{}</td><td>{}</td><td class=\"lag\">{}</td></tr>\n",
                    escape(&l.topic),
                    l.partition,
                    escape(&l.topic),
                    l.partition,
                    l.committed,
                    l.lag
                );
            }
        }
        let t = &self.traffic;
        let traffic = format!(
            "<td id=\"messages_in\">{}</td><td id=\"bytes_in\">{}</td><td id=\"bytes_out\">{}</td>\
             <td id=\"produce_requests\">{}</td><td id=\"fetch_requests\">{}</td>",
            t.messages_in, t.bytes_in, t.bytes_out, t.produce_requests, t.fetch_requests
        );
        fill_template(
            PAGE,
            &[
                ("{node}", &self.node_id.to_string()),
                ("{cluster}", &escape(&self.cluster_id)),
                ("{traffic}", &traffic),
                ("{brokers}", &brokers),
                ("{partitions}", &partitions),
                ("{internal}", &internal),
                ("{groups}", &groups),
            ],
        )
    }
}

/// Replaces each placeholder in one pass, so text filled in is never taken for a placeholder.
fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        match values.iter().find(|(key, _)| rest.starts_with(key)) {
            Some((key, value)) => {
                out.push_str(value);
                rest = &rest[key.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// HTML-escapes text (group ids are arbitrary client strings).
fn escape(s: &str) -> String {
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

const PAGE: &str = include_str!("console.html");

#[cfg(test)]
mod tests {
    #[test]
    fn a_filled_in_value_is_never_taken_for_a_placeholder() {
        let page = super::fill_template("<p>{a}</p><p>{b}</p>{c}", &[("{a}", "{b}"), ("{b}", "x")]);
        assert_eq!(page, "<p>{b}</p><p>x</p>{c}");
    }

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            super::escape("<script>\"&'"),
            "&lt;script&gt;&quot;&amp;&#39;"
        );
    }
}
