//! What librdkafka itself complains about (warnings, errors: brokers down, request
//! timeouts, unsupported features), collected from every client of the run.
//!
//! Without this, a run that acknowledges nothing only says "nothing was acknowledged";
//! with it, the report says why. The first few distinct messages are also echoed on
//! stderr as they happen. State is process-wide: all clients of a run share it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// Distinct messages kept (and echoed) per run.
const KEEP: usize = 10;

static COUNT: AtomicU64 = AtomicU64::new(0);
static SAMPLES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(message: String) {
    COUNT.fetch_add(1, Ordering::Relaxed);
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    if samples.len() < KEEP && !samples.contains(&message) {
        eprintln!("librdkafka: {message}");
        samples.push(message);
    }
}

/// Number of librdkafka warnings and errors so far, and the first distinct ones.
pub fn snapshot() -> (u64, Vec<String>) {
    let samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (COUNT.load(Ordering::Relaxed), samples)
}

/// The client context every bench client is created with.
#[derive(Clone, Copy, Default)]
pub struct BenchContext;

impl ClientContext for BenchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            note(format!("{fac}: {log_message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        note(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for BenchContext {}
