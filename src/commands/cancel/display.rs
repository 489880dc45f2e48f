//! How a one-shot run shows itself: a live line on a terminal, one line
//! per status change elsewhere, or only the result with `--quiet`. The
//! display is the command's report; its status writer (`InMemory`)
//! keeps nothing, since status lives in the round's `Observed`.

use std::convert::Infallible;
use std::time::Duration;

use crate::crd::{OfferCancellationStatus, Phase};
use crate::decide::Transition;
use crate::reconcile::Report;
use crate::status::StatusWriter;

/// Where the run's words go: stdout, or stderr when stdout carries the
/// resource (`-o`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Voice {
    pub(super) to_stderr: bool,
    pub(super) quiet: bool,
}

impl Voice {
    pub(super) fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        self.result(line);
    }

    /// Printed even when quiet.
    pub(super) fn result(&self, line: &str) {
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            super::super::print_out(&format!("{line}\n"));
        }
    }

    fn is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        if self.to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        }
    }
}

/// Shows the run as it goes: on a terminal one live line (spinner, elapsed
/// time, phase, message and the operation's current step), elsewhere one
/// plain line per status change, or nothing with `--quiet`.
pub(super) enum Display {
    Live(indicatif::ProgressBar),
    Lines(Voice),
    Quiet,
}

impl Display {
    pub(super) fn new(voice: Voice) -> Display {
        if voice.quiet {
            return Display::Quiet;
        }
        if !voice.is_terminal() {
            return Display::Lines(voice);
        }
        let target = if voice.to_stderr {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::stdout()
        };
        let bar = indicatif::ProgressBar::with_draw_target(None, target);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Display::Live(bar)
    }

    pub(super) fn finish(&self) {
        if let Display::Live(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// The cancel command's status lives in the round's own `Observed`: its
/// writer keeps nothing else, and cannot fail.
pub(super) struct InMemory;

impl StatusWriter for InMemory {
    type Error = Infallible;

    async fn write(&mut self, _: &OfferCancellationStatus) -> Result<(), Infallible> {
        Ok(())
    }
}

impl Report for Display {
    async fn transitioned(&mut self, before: &OfferCancellationStatus, t: &Transition) {
        match self {
            Display::Live(bar) => {
                bar.set_message(live_line(&t.status, t.progress.as_deref()));
            }
            Display::Lines(voice) if &t.status != before => {
                voice.say(&transition_line(&t.status));
            }
            Display::Lines(_) | Display::Quiet => {}
        }
    }
}

/// The live line: the phase, then CPP's own words for the step under way
/// (when a poll listed steps), then the message; indicatif's `wide_msg`
/// cuts it to the terminal's width, from the end, so what CPP says is the
/// last to go.
fn live_line(status: &OfferCancellationStatus, progress: Option<&str>) -> String {
    let phase = status.phase.map(Phase::as_str).unwrap_or("-");
    let message = status.message.as_deref().unwrap_or("");
    match progress {
        Some(step) => format!("{phase} · {step} · {message}"),
        None => format!("{phase} · {message}"),
    }
}

fn transition_line(status: &OfferCancellationStatus) -> String {
    let phase = status.phase.map(Phase::as_str).unwrap_or("-");
    let mut line = format!("{phase:<10} {}", status.message.as_deref().unwrap_or(""));
    if let (Some(Phase::Cancelling), Some(loc)) = (status.phase, &status.operation_location) {
        line.push_str(&format!(" [location {loc}]"));
    }
    line
}
