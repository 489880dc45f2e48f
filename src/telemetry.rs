//! Logging setup: text or JSON, filtered by `RUST_LOG` (default `info`);
//! with the `otel` feature and `--otel`, spans are also exported over
//! OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`.
//!
//! It may not log a secret: what it is given is already safe to show.

#[cfg(feature = "otel")]
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. A second call (tests) keeps the first.
pub fn init(format: LogFormat, otel: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a terminal, and not when NO_COLOR is set
    // (no-color.org): a file or a pipe (a log collector) gets plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colour = !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(otel.then(otel_layer).flatten())
        .with(filter)
        .with(fmt)
        .try_init();
}

#[cfg(feature = "otel")]
fn otel_layer() -> Option<impl Layer<Registry>> {
    use opentelemetry::trace::TracerProvider;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OpenTelemetry export disabled: {e}");
            return None;
        }
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("offer-cancel-operator");
    opentelemetry::global::set_tracer_provider(provider);
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Without the `otel` feature `--otel` only says so.
#[cfg(not(feature = "otel"))]
fn otel_layer() -> Option<tracing_subscriber::layer::Identity> {
    eprintln!("--otel given, but this build has no OpenTelemetry support (cargo feature otel)");
    None
}
