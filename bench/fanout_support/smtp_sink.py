"""A fast SMTP sink for bench/fanout.py: accepts every message, keeps none, counts them.

Plain asyncio protocol code, no aiosmtpd: a pure-Python SMTP server built on
stream readers costs more CPU per message than the clients measured here, and
the sink must not be what limits the rate. It speaks just enough SMTP for
smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and does not look at
the message beyond finding its end.

    .venv/bin/python bench/fanout_support/smtp_sink.py --port 8025 --control-port 8026

A connection to the control port takes one line: ``stats`` answers the counts as one
line of JSON (messages, recipients, bytes, connections, and the wall-clock time of the
first and last message accepted since the last reset); ``reset`` answers them and sets
them to zero. SIGTERM or SIGINT stops the sink; it prints the counts as its last line.
"""

import argparse
import asyncio
import json
import signal
import time

END_OF_DATA = b"\r\n.\r\n"
EHLO_REPLY = b"250-sink.bench\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"


class Counters:
    def __init__(self):
        self.reset()

    def reset(self):
        self.messages = 0
        self.recipients = 0
        self.bytes = 0
        self.connections = 0
        self.first_at = None
        self.last_at = None

    def as_dict(self):
        return {
            "messages": self.messages,
            "recipients": self.recipients,
            "bytes": self.bytes,
            "connections": self.connections,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


class SinkProtocol(asyncio.Protocol):
    def __init__(self, counters):
        self.counters = counters
        self.buffer = b""
        self.in_data = False
        self.scanned = 0
        self.recipients = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.counters.connections += 1
        transport.write(b"220 sink.bench ESMTP fanout sink\r\n")

    def data_received(self, data):
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                # The end marker may straddle two reads: search from a little before.
                end = self.buffer.find(END_OF_DATA, max(0, self.scanned - 4))
                if end < 0:
                    self.scanned = len(self.buffer)
                    break
                counters = self.counters
                counters.messages += 1
                counters.recipients += self.recipients
                counters.bytes += end
                now = time.time()
                if counters.first_at is None:
                    counters.first_at = now
                counters.last_at = now
                self.buffer = self.buffer[end + len(END_OF_DATA) :]
                self.in_data = False
                self.scanned = 0
                self.recipients = 0
                replies.append(b"250 2.0.0 accepted and discarded\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line = self.buffer[:end]
            self.buffer = self.buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"MAIL":
                self.recipients = 0
                replies.append(b"250 2.1.0 OK\r\n")
            elif verb == b"RCPT":
                self.recipients += 1
                replies.append(b"250 2.1.5 OK\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.scanned = 0
                # A message starting right after DATA: let the marker match at its start too.
                self.buffer = b"\r\n" + self.buffer
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"EHLO":
                replies.append(EHLO_REPLY)
            elif verb == b"HELO":
                replies.append(b"250 sink.bench\r\n")
            elif verb in (b"RSET", b"NOOP"):
                self.recipients = 0
                replies.append(b"250 2.0.0 OK\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 2.0.0 bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:
                replies.append(b"502 5.5.2 command not implemented\r\n")
        if replies:
            self.transport.write(b"".join(replies))


async def serve(host, port, control_port):
    counters = Counters()
    loop = asyncio.get_running_loop()
    smtp_server = await loop.create_server(
        lambda: SinkProtocol(counters), host=host, port=port, backlog=512
    )

    async def control(reader, writer):
        command = (await reader.readline()).strip().lower()
        writer.write(json.dumps(counters.as_dict()).encode() + b"\n")
        if command == b"reset":
            counters.reset()
        await writer.drain()
        writer.close()

    control_server = await asyncio.start_server(control, host=host, port=control_port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"smtp sink listening on {host}:{port}, control on {control_port}", flush=True)
    await stop.wait()
    smtp_server.close()
    control_server.close()
    print(json.dumps(counters.as_dict()), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.control_port))


if __name__ == "__main__":
    main()
