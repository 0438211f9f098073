//! Running QEMU: interactively for `run`, captured with a time bound for tests.

use crate::board::Qemu;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The oldest QEMU whose GICv4 model we test against.
const MIN_MAJOR: u32 = 10;

/// Checks that the board's QEMU exists and is recent enough.
pub fn check(qemu: &Qemu) -> Result<(), String> {
    let out = Command::new(&qemu.binary).arg("--version").output().map_err(|_| {
        format!(
            "`{}` not found. On Debian: add bookworm-backports and run\n  apt-get install -t bookworm-backports qemu-system-arm\n(or run `bash .ci/run`, which does it)",
            qemu.binary
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_MAJOR => Ok(()),
        _ => Err(format!(
            "{} reports `{}`: QEMU {MIN_MAJOR} or newer is needed (Debian: apt-get install -t bookworm-backports qemu-system-arm)",
            qemu.binary,
            text.lines().next().unwrap_or("")
        )),
    }
}

/// The QEMU command line for booting `image` with `bundle` on the board.
pub fn command(qemu: &Qemu, image: &Path, bundle: &Path, extra: &[String]) -> Command {
    let mut cmd = Command::new(&qemu.binary);
    cmd.args([
        "-M",
        &qemu.machine,
        "-cpu",
        &qemu.cpu,
        "-smp",
        &qemu.smp.to_string(),
        "-m",
        &qemu.memory,
    ]);
    cmd.arg("-nographic");
    cmd.args(&qemu.args);
    cmd.args(extra);
    cmd.arg("-kernel").arg(image).arg("-initrd").arg(bundle);
    cmd
}

/// What a captured run produced.
pub struct Outcome {
    /// Everything QEMU printed (the hypervisor's and the guests' consoles).
    pub output: String,
    /// QEMU's exit code, or `None` if it was killed.
    pub exit_code: Option<i32>,
    /// Whether the time bound killed it.
    pub timed_out: bool,
}

/// Runs `cmd` with output captured, killing it after `timeout` or as soon as
/// `stop_when(output)` holds.
pub fn run_captured(
    cmd: Command,
    timeout: Duration,
    stop_when: &dyn Fn(&str) -> bool,
) -> Result<Outcome, String> {
    run_typing(cmd, timeout, stop_when, &[])
}

/// One step of what is typed on QEMU's console: once the previous steps
/// are done and the output's complete lines contain `after` (anywhere, so
/// the texts of one script must differ), `keys` are written to QEMU's
/// standard input (the serial console under `-nographic`).
pub struct Typed<'a> {
    /// Text to wait for.
    pub after: &'a str,
    /// Bytes to type then.
    pub keys: &'a [u8],
}

/// [`run_captured`], typing `script` on the console as its steps' texts
/// appear.
pub fn run_typing(
    mut cmd: Command,
    timeout: Duration,
    stop_when: &dyn Fn(&str) -> bool,
    script: &[Typed<'_>],
) -> Result<Outcome, String> {
    cmd.stdin(if script.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("starting QEMU: {e}"))?;
    let mut stdin = child.stdin.take();
    let mut step = 0;
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let buf = Arc::clone(&buf);
        readers.push(std::thread::spawn(move || {
            let mut stream = stream;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        }));
    }
    let start = Instant::now();
    let (mut timed_out, mut stopped_early) = (false, false);
    let exit_code = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status.code();
        }
        let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        // Only whole lines: a condition must never fire on the first half of
        // a line whose second half the checks then miss.
        let lines = complete_lines(&text);
        if let (Some(s), Some(input)) = (script.get(step), stdin.as_mut()) {
            if lines.contains(s.after) {
                use std::io::Write;
                input
                    .write_all(s.keys)
                    .and_then(|()| input.flush())
                    .map_err(|e| format!("typing on QEMU's console: {e}"))?;
                step += 1;
            }
        }
        if stop_when(lines) {
            stopped_early = true;
        } else if start.elapsed() > timeout {
            timed_out = true;
        }
        if stopped_early || timed_out {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        let _ = r.join();
    }
    let output = String::from_utf8_lossy(&buf.lock().unwrap()).replace('\r', "");
    Ok(Outcome {
        output,
        exit_code,
        timed_out,
    })
}

/// `text` up to and including its last newline.
fn complete_lines(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |i| i + 1)]
}

/// Runs `cmd` captured like [`run_captured`] (never stopped early), and
/// measures the wall time from the start to the first complete line that
/// contains `marker`, if one was printed.
pub fn run_timed(
    cmd: Command,
    timeout: Duration,
    marker: &str,
) -> Result<(Outcome, Option<f64>), String> {
    let seen_at: std::cell::Cell<Option<Instant>> = std::cell::Cell::new(None);
    let started = Instant::now();
    let outcome = run_captured(cmd, timeout, &|out: &str| {
        if seen_at.get().is_none() && out.contains(marker) {
            seen_at.set(Some(Instant::now()));
        }
        false
    })?;
    let seconds = match seen_at.get() {
        Some(at) => Some(at.duration_since(started).as_secs_f64()),
        // QEMU exited within one poll of printing it: its end is the bound.
        None if outcome.output.contains(marker) => Some(started.elapsed().as_secs_f64()),
        None => None,
    };
    Ok((outcome, seconds))
}

#[cfg(test)]
mod tests {
    use super::complete_lines;

    #[test]
    fn a_partial_last_line_is_not_seen() {
        assert_eq!(complete_lines("a\nb\n[alpha] PASS door"), "a\nb\n");
        assert_eq!(complete_lines("no newline yet"), "");
        assert_eq!(complete_lines("done\n"), "done\n");
    }
}
