//! The one status line that `call`, `push` and `load` show on stderr while they run, and
//! what Ctrl-C or SIGTERM does meanwhile: [`watch`] drives any [`Watched`] work.

use std::pin::Pin;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

/// Work shown on a status line until it ends.
pub(super) trait Watched {
    type Output;
    /// Resolves when the work ends. It is dropped and called again after every refresh and
    /// signal, so it must be cancel-safe.
    fn finished(&mut self) -> impl Future<Output = Self::Output>;
    /// Ctrl-C or SIGTERM arrived: ask the work to stop. `Some` ends the watch with that
    /// output at once; `None` keeps waiting for the work to wind down by itself.
    fn interrupted(&mut self) -> impl Future<Output = Option<Self::Output>>;
    /// Redraws the line; may print above it.
    fn refresh(&mut self, line: &ProgressBar) -> anyhow::Result<()>;
}

/// Runs `work` to its end, refreshing `line` every `every`, and clears the line.
///
/// Every Ctrl-C or SIGTERM is passed on to the work: a session that was asked to stop still
/// tears down in the cloud, and that must not be cut short by a second signal.
pub(super) async fn watch<W: Watched>(
    work: &mut W,
    line: &ProgressBar,
    every: Duration,
) -> anyhow::Result<W::Output> {
    let mut tick = tokio::time::interval(every);
    let out = loop {
        tokio::select! {
            out = work.finished() => break out,
            _ = crate::app::shutdown_signal() => {
                if let Some(out) = work.interrupted().await {
                    break out;
                }
            }
            _ = tick.tick() => work.refresh(line)?,
        }
    };
    line.finish_and_clear();
    Ok(out)
}

/// Work that is asked to stop through a watch channel and publishes its status through
/// another: a session (`call`) or a load run (`load`).
pub(super) struct Stoppable<F: Future, S> {
    work: Pin<Box<F>>,
    stop: watch::Sender<bool>,
    status: watch::Receiver<S>,
    show: fn(&S, &ProgressBar),
}

impl<F: Future, S> Stoppable<F, S> {
    pub(super) fn new(
        work: F,
        stop: watch::Sender<bool>,
        status: watch::Receiver<S>,
        show: fn(&S, &ProgressBar),
    ) -> Self {
        Self {
            work: Box::pin(work),
            stop,
            status,
            show,
        }
    }
}

impl<F: Future, S> Watched for Stoppable<F, S> {
    type Output = F::Output;

    async fn finished(&mut self) -> F::Output {
        self.work.as_mut().await
    }

    async fn interrupted(&mut self) -> Option<F::Output> {
        let _ = self.stop.send(true);
        None
    }

    fn refresh(&mut self, line: &ProgressBar) -> anyhow::Result<()> {
        (self.show)(&self.status.borrow_and_update(), line);
        Ok(())
    }
}

/// A spinner and one line of text; drawn nowhere when `hidden` (stdout is for JSON then).
pub(super) fn spinner(hidden: bool) -> ProgressBar {
    let line = ProgressBar::new_spinner();
    if hidden {
        line.set_draw_target(ProgressDrawTarget::hidden());
    }
    line.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    line
}

/// A bar counting `len` things done, with a line of text; drawn nowhere when `hidden`.
pub(super) fn counter(len: u64, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} done | {msg} | {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// A bar for one job measured in thousandths (a transcode).
pub(super) fn fraction() -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}% {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// A transcode under a progress bar. Ctrl-C drops it, and with it its partial file, and
/// ends it as the error `interrupted: {interrupted}`.
pub(super) async fn transcoding<T, E: Into<anyhow::Error>>(
    interrupted: String,
    transcode: impl AsyncFnOnce(&(dyn Fn(f64) + Sync)) -> Result<T, E>,
) -> anyhow::Result<T> {
    let bar = fraction();
    bar.set_message("transcoding");
    let progress = |f: f64| bar.set_position((f * 1000.0) as u64);
    let done = tokio::select! {
        done = transcode(&progress) => done.map_err(Into::into),
        _ = crate::app::shutdown_signal() => Err(anyhow::anyhow!("interrupted: {interrupted}")),
    };
    bar.finish_and_clear();
    done
}
