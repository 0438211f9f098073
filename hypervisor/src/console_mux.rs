//! One physical console shared by the hypervisor and every partition.
//!
//! Output: each partition's text is shown line by line with its name in
//! front, so lines of different partitions never mix. A partition someone
//! is typing into shows its unfinished line at once (a shell's prompt and
//! the echo of each key); if another source prints meanwhile, the
//! unfinished line is ended first and continued under a fresh prefix.
//!
//! Input: bytes typed go to the partition that has the input focus, the
//! first one at boot. `Ctrl-\` moves the focus to the next partition, and
//! `Ctrl-]` asks the hypervisor for its counters (neither byte is
//! delivered; QEMU's `-nographic` keeps `Ctrl-A` for itself).
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// The key that moves the input focus: Ctrl-\ (FS, 0x1c).
pub const SWITCH_KEY: u8 = 0x1c;
/// The key that prints the hypervisor's counters: Ctrl-] (GS, 0x1d).
pub const COUNTERS_KEY: u8 = 0x1d;

/// What a typed byte does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Deliver the byte to partition `index`.
    Deliver { index: usize, byte: u8 },
    /// The focus moved to partition `index`.
    Focus { index: usize },
    /// Print the hypervisor's counters.
    Counters,
    /// Nothing to do (no partitions).
    Ignore,
}

/// The console's state: whose unfinished line is on screen, who has the
/// input focus.
#[derive(Debug, Default)]
pub struct ConsoleMux {
    /// The partition whose unfinished line the cursor sits after.
    mid_line: Option<usize>,
    /// The partition typed bytes go to.
    focus: usize,
}

impl ConsoleMux {
    /// A console at the start of a line, focus on partition 0.
    pub const fn new() -> Self {
        Self {
            mid_line: None,
            focus: 0,
        }
    }

    /// The partition that has the input focus.
    pub fn focus(&self) -> usize {
        self.focus
    }

    /// A finished line `text` of partition `index` called `name`: appends
    /// what the physical console must print to `out`.
    pub fn line(&mut self, index: usize, name: &str, text: &[u8], out: &mut Vec<u8>) {
        self.begin(index, name, out);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
        self.mid_line = None;
    }

    /// Unfinished output `text` of partition `index`, shown now.
    pub fn partial(&mut self, index: usize, name: &str, text: &[u8], out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.begin(index, name, out);
        out.extend_from_slice(text);
        self.mid_line = Some(index);
    }

    /// The hypervisor is about to print whole lines of its own.
    pub fn hypervisor(&mut self, out: &mut Vec<u8>) {
        if self.mid_line.take().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }

    /// A byte typed on the console, with `partitions` partitions present.
    pub fn input(&mut self, byte: u8, partitions: usize) -> Input {
        if partitions == 0 {
            return Input::Ignore;
        }
        self.focus = self.focus.min(partitions - 1);
        if byte == SWITCH_KEY {
            self.focus = (self.focus + 1) % partitions;
            Input::Focus { index: self.focus }
        } else if byte == COUNTERS_KEY {
            Input::Counters
        } else {
            Input::Deliver {
                index: self.focus,
                byte,
            }
        }
    }

    /// Ends another source's unfinished line, and starts this partition's
    /// line with its prefix unless the cursor already sits in it.
    fn begin(&mut self, index: usize, name: &str, out: &mut Vec<u8>) {
        match self.mid_line {
            Some(i) if i == index => return,
            Some(_) => out.extend_from_slice(b"\r\n"),
            None => {}
        }
        out.push(b'[');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"] ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut ConsoleMux, &mut Vec<u8>), m: &mut ConsoleMux) -> String {
        let mut out = Vec::new();
        f(m, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_lines_get_their_partitions_name() {
        let mut m = ConsoleMux::new();
        assert_eq!(
            text(|m, o| m.line(0, "alpha", b"hello", o), &mut m),
            "[alpha] hello\r\n"
        );
        assert_eq!(
            text(|m, o| m.line(1, "beta", b"tick", o), &mut m),
            "[beta] tick\r\n"
        );
    }

    #[test]
    fn an_unfinished_line_is_continued_then_finished() {
        let mut m = ConsoleMux::new();
        assert_eq!(
            text(|m, o| m.partial(0, "a", b"~ # ", o), &mut m),
            "[a] ~ # "
        );
        assert_eq!(text(|m, o| m.partial(0, "a", b"l", o), &mut m), "l");
        assert_eq!(text(|m, o| m.line(0, "a", b"s", o), &mut m), "s\r\n");
        assert_eq!(
            text(|m, o| m.line(0, "a", b"bin", o), &mut m),
            "[a] bin\r\n"
        );
    }

    #[test]
    fn another_source_ends_an_unfinished_line_first() {
        let mut m = ConsoleMux::new();
        text(|m, o| m.partial(0, "a", b"~ # ", o), &mut m);
        assert_eq!(
            text(|m, o| m.line(1, "b", b"ping", o), &mut m),
            "\r\n[b] ping\r\n"
        );
        // The interrupted line goes on under a fresh prefix.
        assert_eq!(text(|m, o| m.line(0, "a", b"ls", o), &mut m), "[a] ls\r\n");
        text(|m, o| m.partial(0, "a", b"x", o), &mut m);
        assert_eq!(text(|m, o| m.hypervisor(o), &mut m), "\r\n");
        assert_eq!(text(|m, o| m.hypervisor(o), &mut m), "");
        assert_eq!(text(|m, o| m.partial(0, "a", b"", o), &mut m), "");
    }

    #[test]
    fn the_switch_key_cycles_the_focus_and_is_not_delivered() {
        let mut m = ConsoleMux::new();
        assert_eq!(
            m.input(b'x', 2),
            Input::Deliver {
                index: 0,
                byte: b'x'
            }
        );
        assert_eq!(m.input(SWITCH_KEY, 2), Input::Focus { index: 1 });
        assert_eq!(
            m.input(b'y', 2),
            Input::Deliver {
                index: 1,
                byte: b'y'
            }
        );
        assert_eq!(m.input(SWITCH_KEY, 2), Input::Focus { index: 0 });
        assert_eq!(m.focus(), 0);
        assert_eq!(m.input(b'z', 0), Input::Ignore);
    }

    #[test]
    fn the_counters_key_is_not_delivered_and_keeps_the_focus() {
        let mut m = ConsoleMux::new();
        m.input(SWITCH_KEY, 2);
        assert_eq!(m.input(COUNTERS_KEY, 2), Input::Counters);
        assert_eq!(m.focus(), 1);
    }

    #[test]
    fn a_focus_past_the_partitions_is_clamped() {
        let mut m = ConsoleMux::new();
        m.input(SWITCH_KEY, 3);
        m.input(SWITCH_KEY, 3);
        assert_eq!(
            m.input(b'q', 1),
            Input::Deliver {
                index: 0,
                byte: b'q'
            }
        );
    }
}
