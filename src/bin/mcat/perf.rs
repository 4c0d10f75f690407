//! `mcat perf send|receive GROUP:PORT`: a measured stream, as iperf -u or omping measure
//! one. The sender sends numbered datagrams of --size at --rate for --duration, then an
//! end marker (three times, since it may be lost too) saying how many it sent; every
//! receiver (any number at once) prints, per sender and interval, what it received, lost,
//! received out of order or twice, the jitter and the rate, and a summary per sender.
//!
//! A datagram, all numbers big-endian (the rest of --size is zeros):
//!
//! ```text
//! 0   4  "MCPF"
//! 4   1  version: 1
//! 5   1  kind: 0 data, 1 end (its sequence number: how many data datagrams were sent)
//! 6   2  zero
//! 8   8  stream id: random per sender run
//! 16  8  sequence number, from 0
//! 24  8  send time: nanoseconds since the stream started, on the sender's clock
//! ```
//!
//! Jitter is RFC 3550's: the mean deviation of transit-time differences, smoothed by
//! 1/16; only differences count, so the two hosts' clocks need not agree.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use multicast::{JoinOptions, Timeout};
use serde_json::json;

use crate::{interrupt, join, Common, Pace, EXIT_TIMEOUT};

const MAGIC: &[u8; 4] = b"MCPF";
const VERSION: u8 = 1;
const DATA: u8 = 0;
const END: u8 = 1;
/// Bytes of the header; the smallest --size.
pub const HEADER_LEN: usize = 32;
/// How many senders' streams a receiver tracks; datagrams of further stream ids are
/// ignored (forged or stray ids cannot grow its memory or its output without bound).
const MAX_STREAMS: usize = 256;
/// The receive buffer a receiver asks for.
const RECEIVE_BUFFER: usize = 4 << 20;
/// How many end markers the sender sends, and how far apart.
const END_MARKERS: usize = 3;
const END_GAP: Duration = Duration::from_millis(20);

#[derive(Args)]
pub struct Perf {
    #[command(subcommand)]
    side: Side,
}

#[derive(Subcommand)]
enum Side {
    /// Send numbered datagrams of --size at --rate for --duration, then an end marker.
    Send(SendSide),
    /// Measure every sender's stream: a line per --interval, a summary when it ends.
    Receive(ReceiveSide),
}

#[derive(Args)]
struct SendSide {
    #[command(flatten)]
    common: Common,
    /// Bytes per datagram, at least 32 (the header).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = size_arg)]
    size: usize,
    /// Datagrams per second.
    #[arg(long, value_name = "R", default_value_t = 1000.0, value_parser = crate::rate_arg)]
    rate: f64,
    /// How long to send.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = crate::positive_seconds)]
    duration: Duration,
    /// Time to live (hops) of the datagrams, 1..255.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = crate::ttl_arg)]
    ttl: u32,
    /// The closing line as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReceiveSide {
    #[command(flatten)]
    common: Common,
    /// Seconds per interval line.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = crate::positive_seconds)]
    interval: Duration,
    /// Give up after this many seconds without a datagram (exit status 3 if none came).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = crate::positive_seconds)]
    timeout: Duration,
    /// One JSON object per line: intervals and summaries.
    #[arg(long)]
    json: bool,
}

fn size_arg(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n >= HEADER_LEN)
        .ok_or_else(|| format!("expected a size of at least {HEADER_LEN} bytes, not {text}"))
}

pub fn run(perf: &Perf) -> Result<ExitCode, String> {
    match &perf.side {
        Side::Send(send) => run_send(send),
        Side::Receive(receive) => run_receive(receive),
    }
}

fn run_send(side: &SendSide) -> Result<ExitCode, String> {
    let group = join(&side.common, JoinOptions::default().ttl(side.ttl))?;
    if side.size > group.max_message_size() {
        crate::usage_error(format!(
            "--size {} is more than the largest message this group sends ({})",
            side.size,
            group.max_message_size()
        ));
    }
    interrupt::catch();
    let stream = crate::ping::random_id();
    let mut datagram = vec![0u8; side.size];
    let pace = Pace::new(Some(side.rate));
    let mut sent = 0u64;
    while pace.start.elapsed() < side.duration && !interrupt::happened() {
        pace.wait_for(sent);
        let at = pace.start.elapsed().as_nanos() as u64;
        write_header(&mut datagram, DATA, stream, sent, at);
        group.send(&datagram).map_err(|e| e.to_string())?;
        sent += 1;
    }
    let seconds = pace.start.elapsed().as_secs_f64();
    for _ in 0..END_MARKERS {
        write_header(&mut datagram[..HEADER_LEN], END, stream, sent, 0);
        group
            .send(&datagram[..HEADER_LEN])
            .map_err(|e| e.to_string())?;
        std::thread::sleep(END_GAP);
    }
    let rate = sent as f64 / seconds.max(1e-9);
    let line = if side.json {
        json!({"type": "sent", "stream": format!("{stream:016x}"), "sent": sent,
               "size": side.size, "seconds": seconds, "rate": rate})
        .to_string()
    } else {
        format!(
            "mcat perf: stream {stream:016x}: sent {sent} datagrams of {} bytes in {seconds:.3} s ({rate:.1}/s, {:.2} Mbit/s)",
            side.size,
            rate * side.size as f64 * 8.0 / 1e6
        )
    };
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn write_header(datagram: &mut [u8], kind: u8, stream: u64, seq: u64, at_ns: u64) {
    datagram[..4].copy_from_slice(MAGIC);
    datagram[4] = VERSION;
    datagram[5] = kind;
    datagram[6..8].fill(0);
    datagram[8..16].copy_from_slice(&stream.to_be_bytes());
    datagram[16..24].copy_from_slice(&seq.to_be_bytes());
    datagram[24..32].copy_from_slice(&at_ns.to_be_bytes());
}

/// A perf datagram's header: kind, stream, sequence number, send time (ns).
fn read_header(datagram: &[u8]) -> Option<(u8, u64, u64, u64)> {
    if datagram.len() < HEADER_LEN || &datagram[..4] != MAGIC || datagram[4] != VERSION {
        return None;
    }
    let number = |at: usize| u64::from_be_bytes(datagram[at..at + 8].try_into().expect("8 bytes"));
    Some((datagram[5], number(8), number(16), number(24)))
}

/// What one interval (or the whole stream) counted.
#[derive(Clone, Copy, Default)]
struct Tally {
    received: u64,
    bytes: u64,
    /// Gaps opened less gaps later filled by reordered datagrams (an interval's may be
    /// negative, when it fills an earlier one's gaps).
    lost: i64,
    reordered: u64,
    duplicates: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.received += other.received;
        self.bytes += other.bytes;
        self.lost = self.lost.saturating_add(other.lost);
        self.reordered += other.reordered;
        self.duplicates += other.duplicates;
    }
}

/// A count as the signed loss arithmetic takes it; a hostile sender's sequence numbers
/// (a jump to 2^64 - 1) saturate rather than wrap.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Sequence numbers seen among the last [`WINDOW`] below the highest: duplicates and
/// reordered datagrams within it are told apart; older ones count as reordered.
const WINDOW: u64 = 4096;

/// One sender's stream as this receiver hears it.
struct Stream {
    source: SocketAddr,
    first_heard: Instant,
    last_heard: Instant,
    /// The first sequence number heard: a receiver that starts late counts from there.
    base: u64,
    highest: u64,
    seen: Vec<u64>,
    interval: Tally,
    total: Tally,
    jitter: f64,
    last_transit: Option<f64>,
    /// From the end marker: how many data datagrams the sender sent.
    sent: Option<u64>,
    summarized: bool,
}

impl Stream {
    fn new(source: SocketAddr, seq: u64, now: Instant) -> Stream {
        Stream {
            source,
            first_heard: now,
            last_heard: now,
            base: seq,
            highest: seq,
            seen: vec![0; (WINDOW / 64) as usize],
            interval: Tally::default(),
            total: Tally::default(),
            jitter: 0.0,
            last_transit: None,
            sent: None,
            summarized: false,
        }
    }

    fn slot(seq: u64) -> (usize, u64) {
        (((seq % WINDOW) / 64) as usize, 1 << (seq % 64))
    }

    fn mark(&mut self, seq: u64) -> bool {
        let (word, bit) = Stream::slot(seq);
        let was = self.seen[word] & bit != 0;
        self.seen[word] |= bit;
        was
    }

    /// Counts data datagram `seq` of `len` bytes, sent `sent_ns` into the stream,
    /// arriving at `arrival` (seconds on this host's clock).
    fn data(&mut self, seq: u64, len: usize, sent_ns: u64, arrival: f64, now: Instant) {
        self.last_heard = now;
        let first = self.total.received == 0 && self.interval.received == 0;
        let (mut lost, mut reordered) = (0i64, 0u64);
        if first {
            self.mark(seq);
        } else if seq > self.highest {
            // The slots from the old highest on now stand for new sequence numbers.
            if seq - self.highest >= WINDOW {
                self.seen.fill(0);
            } else {
                for newer in self.highest + 1..=seq {
                    let (word, bit) = Stream::slot(newer);
                    self.seen[word] &= !bit;
                }
            }
            lost = count(seq - self.highest - 1);
            self.highest = seq;
            self.mark(seq);
        } else if self.highest - seq >= WINDOW || seq < self.base {
            reordered = 1;
        } else if self.mark(seq) {
            self.interval.duplicates += 1;
            return;
        } else {
            (lost, reordered) = (-1, 1); // it fills a gap counted as lost
        }
        let tally = &mut self.interval;
        tally.lost = tally.lost.saturating_add(lost);
        tally.reordered += reordered;
        tally.received += 1;
        tally.bytes += len as u64;
        let transit = arrival - sent_ns as f64 / 1e9;
        if let Some(previous) = self.last_transit {
            self.jitter += ((transit - previous).abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Closes the interval: its tally, added to the stream's.
    fn close_interval(&mut self) -> Tally {
        let interval = std::mem::take(&mut self.interval);
        self.total.add(&interval);
        interval
    }

    /// The whole stream: what the sender sent (if its end marker came), and the loss
    /// from it (tail losses included) or from the gaps heard.
    fn summary(&mut self) -> (Option<u64>, Tally) {
        self.close_interval();
        let mut total = self.total;
        if let Some(sent) = self.sent {
            let expected = sent.saturating_sub(self.base);
            total.lost = count(expected).saturating_sub(count(total.received));
        }
        (self.sent, total)
    }
}

fn run_receive(side: &ReceiveSide) -> Result<ExitCode, String> {
    // A large buffer, so that a receiver descheduled for a while loses nothing itself
    // (the kernel caps it at net.core.rmem_max; what it still drops is reported).
    let group = join(
        &side.common,
        JoinOptions::default().receive_buffer(RECEIVE_BUFFER),
    )?;
    interrupt::catch();
    eprintln!(
        "mcat perf: receiving on {}, a line every {:?}",
        side.common.group, side.interval
    );
    let start = Instant::now();
    let mut streams: HashMap<u64, Stream> = HashMap::new();
    let mut buf = vec![0u8; group.max_message_size()];
    let mut out = std::io::stdout().lock();
    let mut tick = start + side.interval;
    let mut last_heard = start;
    loop {
        let now = Instant::now();
        if now >= tick {
            for (id, stream) in streams.iter_mut().filter(|(_, s)| !s.summarized) {
                let interval = stream.close_interval();
                let from = (tick - side.interval).max(stream.first_heard);
                let span = (
                    from.duration_since(stream.first_heard).as_secs_f64(),
                    tick.duration_since(stream.first_heard).as_secs_f64(),
                );
                print_line(
                    &mut out, side.json, "interval", *id, stream, span, None, &interval,
                )?;
            }
            while tick <= now {
                tick += side.interval;
            }
        }
        let ended = !streams.is_empty() && streams.values().all(|s| s.summarized);
        let idle = now.duration_since(last_heard) >= side.timeout;
        if ended || idle || interrupt::happened() {
            summarize_all(&mut out, side.json, &mut streams, group.dropped().into())?;
            let heard = !streams.is_empty();
            return Ok(ExitCode::from(if heard { 0 } else { EXIT_TIMEOUT }));
        }
        let wait = tick
            .min(last_heard + side.timeout)
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        let Some(received) = group
            .receive(Timeout::After(wait), &mut buf)
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let now = Instant::now();
        let datagram = &buf[..received.len];
        let Some((kind, id, seq, sent_ns)) = read_header(datagram) else {
            continue; // not a perf datagram: other traffic on the group
        };
        last_heard = now;
        let arrival = now.duration_since(start).as_secs_f64();
        match kind {
            DATA if streams.len() >= MAX_STREAMS && !streams.contains_key(&id) => {}
            DATA => streams
                .entry(id)
                .or_insert_with(|| Stream::new(received.source, seq, now))
                .data(seq, datagram.len(), sent_ns, arrival, now),
            END => {
                if let Some(stream) = streams.get_mut(&id).filter(|s| !s.summarized) {
                    stream.sent = Some(seq);
                    summarize(&mut out, side.json, id, stream, group.dropped().into())?;
                }
            }
            _ => {}
        }
    }
}

fn summarize_all(
    out: &mut impl Write,
    json: bool,
    streams: &mut HashMap<u64, Stream>,
    kernel_dropped: u64,
) -> Result<(), String> {
    for (id, stream) in streams.iter_mut().filter(|(_, s)| !s.summarized) {
        summarize(out, json, *id, stream, kernel_dropped)?;
    }
    Ok(())
}

/// A stream's summary line; `kernel_dropped`: what this host's kernel dropped for the
/// receiving socket so far (a full buffer: loss here, not on the network).
fn summarize(
    out: &mut impl Write,
    json: bool,
    id: u64,
    stream: &mut Stream,
    kernel_dropped: u64,
) -> Result<(), String> {
    let (sent, total) = stream.summary();
    stream.summarized = true;
    let heard = stream.last_heard.duration_since(stream.first_heard);
    let closing = Closing {
        sent,
        kernel_dropped,
    };
    print_line(
        out,
        json,
        "summary",
        id,
        stream,
        (0.0, heard.as_secs_f64()),
        Some(closing),
        &total,
    )
}

/// What a summary line adds to an interval's.
struct Closing {
    /// From the end marker (None: it never came).
    sent: Option<u64>,
    kernel_dropped: u64,
}

/// An interval line, or with `closing` a summary line.
#[allow(clippy::too_many_arguments)]
fn print_line(
    out: &mut impl Write,
    json: bool,
    kind: &str,
    id: u64,
    stream: &Stream,
    (from, to): (f64, f64),
    closing: Option<Closing>,
    tally: &Tally,
) -> Result<(), String> {
    let seconds = (to - from).max(1e-9);
    let rate = tally.received as f64 / seconds;
    let mbps = tally.bytes as f64 * 8.0 / seconds / 1e6;
    let expected = count(tally.received).saturating_add(tally.lost);
    let lost_percent = if expected > 0 {
        100.0 * tally.lost as f64 / expected as f64
    } else {
        0.0
    };
    let jitter_ms = stream.jitter * 1e3;
    let line = if json {
        let mut line = json!({"type": kind, "stream": format!("{id:016x}"), "source": stream.source.to_string(),
            "start": from, "end": to, "received": tally.received, "bytes": tally.bytes, "lost": tally.lost,
            "lost_percent": lost_percent, "reordered": tally.reordered, "duplicates": tally.duplicates,
            "jitter_ms": jitter_ms, "rate": rate, "mbps": mbps});
        if let Some(closing) = &closing {
            line["sent"] = json!(closing.sent);
            line["kernel_dropped"] = json!(closing.kernel_dropped);
        }
        line.to_string()
    } else {
        let (sent, dropped) = match &closing {
            Some(closing) => (
                closing
                    .sent
                    .map_or("end not heard, ".to_owned(), |n| format!("sent {n}, ")),
                format!(", {} dropped by this host's kernel", closing.kernel_dropped),
            ),
            None => (String::new(), String::new()),
        };
        format!(
            "mcat perf: {id:016x} from {}: {kind} {from:.1}-{to:.1} s: {sent}received {} ({rate:.1}/s, {mbps:.2} Mbit/s), lost {} ({lost_percent:.2}%), reordered {}, duplicates {}, jitter {jitter_ms:.3} ms{dropped}",
            crate::shown(stream.source), tally.received, tally.lost, tally.reordered, tally.duplicates
        )
    };
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write standard output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(seqs: &[u64]) -> Tally {
        let now = Instant::now();
        let mut s = Stream::new("10.0.0.1:1".parse().unwrap(), seqs[0], now);
        for &seq in seqs {
            s.data(seq, 100, seq.wrapping_mul(1000), seq as f64 * 1e-6, now);
        }
        s.close_interval()
    }

    #[test]
    fn counts_loss_reordering_and_duplicates() {
        let t = stream_of(&[0, 1, 2, 3]);
        assert_eq!(
            (t.received, t.lost, t.reordered, t.duplicates),
            (4, 0, 0, 0)
        );
        let t = stream_of(&[0, 1, 4, 5]);
        assert_eq!((t.received, t.lost), (4, 2));
        let t = stream_of(&[0, 2, 1, 3]);
        assert_eq!((t.received, t.lost, t.reordered), (4, 0, 1));
        let t = stream_of(&[0, 1, 1, 2, 2]);
        assert_eq!((t.received, t.lost, t.duplicates), (3, 0, 2));
        let t = stream_of(&[5, 6, 7]);
        assert_eq!(
            (t.received, t.lost),
            (3, 0),
            "a late start counts from its first"
        );
        let t = stream_of(&[0, 10_000, 3]);
        assert_eq!(
            (t.received, t.lost, t.reordered),
            (3, 9_999, 1),
            "too old to tell: reordered"
        );
    }

    #[test]
    fn hostile_sequence_numbers_saturate() {
        let t = stream_of(&[0, u64::MAX, u64::MAX, u64::MAX - 1, 5]);
        assert_eq!((t.received, t.duplicates, t.reordered), (4, 1, 2));
        assert_eq!(
            t.lost,
            i64::MAX - 1,
            "a gap of 2^64 - 2 saturates; 2^64 - 2, within the window, fills one place of it"
        );
        let now = Instant::now();
        let mut s = Stream::new("10.0.0.1:1".parse().unwrap(), 0, now);
        s.data(0, 100, 0, 0.0, now);
        s.sent = Some(u64::MAX);
        assert_eq!(s.summary().1.lost, i64::MAX - 1);
    }

    #[test]
    fn summary_counts_tail_losses_from_the_end_marker() {
        let now = Instant::now();
        let mut s = Stream::new("10.0.0.1:1".parse().unwrap(), 0, now);
        for seq in [0, 1, 2, 4] {
            s.data(seq, 100, 0, 0.0, now);
        }
        s.sent = Some(8);
        let (sent, total) = s.summary();
        assert_eq!((sent, total.received, total.lost), (Some(8), 4, 4));
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let now = Instant::now();
        let mut s = Stream::new("10.0.0.1:1".parse().unwrap(), 0, now);
        // Transit times alternate 1 ms apart: the estimate climbs toward 1 ms.
        for seq in 0..200u64 {
            let arrival = seq as f64 * 0.01 + if seq % 2 == 0 { 0.0 } else { 0.001 };
            s.data(seq, 100, seq * 10_000_000, arrival, now);
        }
        assert!((s.jitter - 0.001).abs() < 1e-6, "{}", s.jitter);
    }

    #[test]
    fn headers_round_trip_and_other_traffic_is_not_perf() {
        let mut d = [0u8; 40];
        write_header(&mut d, DATA, 7, 9, 11);
        assert_eq!(read_header(&d), Some((DATA, 7, 9, 11)));
        assert_eq!(read_header(b"hello"), None);
        assert_eq!(read_header(&[0u8; 40]), None);
    }
}
