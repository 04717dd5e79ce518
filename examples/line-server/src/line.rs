//! Reading request lines with a bounded buffer.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt as _};

/// One read from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// A complete line, without its `\n` (or `\r\n`).
    Line(String),
    /// A line longer than the limit. It was read to its end and dropped, so
    /// the next read starts at the next line.
    TooLong,
    /// A line that is not UTF-8.
    NotUtf8,
    /// The client closed the connection.
    Eof,
}

/// Reads the next line into `buf`, never holding more than `max` bytes of it.
///
/// An over-long line is consumed up to its newline without being kept: the
/// memory a client can make the server hold is bounded by `max`, whatever it
/// sends. A last line without a newline before end of stream counts as a line.
pub(crate) async fn read_line<R>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<Read>
where
    R: AsyncBufRead + Unpin,
{
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (too_long, buf.is_empty()) {
                (true, _) => Read::TooLong,
                (false, true) => Read::Eof,
                (false, false) => finish(buf),
            });
        }
        let (chunk, used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if end {
            return Ok(if too_long { Read::TooLong } else { finish(buf) });
        }
    }
}

fn finish(buf: &mut Vec<u8>) -> Read {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    match std::str::from_utf8(buf) {
        Ok(line) => Read::Line(line.to_owned()),
        Err(_) => Read::NotUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> io::Result<Vec<Read>> {
        // A tiny buffer so lines arrive in many pieces.
        let mut reader = tokio::io::BufReader::with_capacity(3, input);
        let mut buf = Vec::new();
        let mut reads = Vec::new();
        loop {
            let read = read_line(&mut reader, &mut buf, max).await?;
            if read == Read::Eof {
                return Ok(reads);
            }
            assert!(buf.len() <= max, "buffer held {} bytes", buf.len());
            reads.push(read);
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_the_stream_resynchronises() -> io::Result<()> {
        let input = b"short\r\nexactly-10\nwell over the limit\n\xff\xfe\nlast";
        let reads = all(input, 10).await?;
        assert_eq!(
            reads,
            vec![
                Read::Line("short".into()),
                Read::Line("exactly-10".into()),
                Read::TooLong,
                Read::NotUtf8,
                Read::Line("last".into()),
            ]
        );
        assert_eq!(all(b"0123456789abc", 10).await?, vec![Read::TooLong]);
        assert_eq!(all(b"", 10).await?, vec![]);
        Ok(())
    }
}
