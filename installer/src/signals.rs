//! SIGINT and SIGTERM: the first stops the operation at its next safe point (the library
//! records where and the binary prints how to resume); a second one exits at once with 130.

use airlift_cluster::cancel::Cancel;
use tokio::signal::unix::{signal, SignalKind};

/// Starts listening on `rt`; returns the flag the library checks.
pub fn cancel_on_signals(rt: &tokio::runtime::Runtime) -> Cancel {
    let cancel = Cancel::new();
    let flag = cancel.clone();
    rt.spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!(
            "interrupted: stopping at the next safe point (send it again to stop at once, \
             leaving the release as the records show)"
        );
        flag.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted again: stopping now");
        std::process::exit(130);
    });
    cancel
}
