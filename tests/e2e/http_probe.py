"""Hostile HTTP clients for the server tests (standard library only).

  http_probe.py declared-huge PORT PATH     declares a 1 GB body, sends 64 KiB, prints the status
  http_probe.py chunked-huge PORT PATH MB   streams MB MiB chunked (no length), prints the status
  http_probe.py slow PORT N SECONDS         opens N connections that send one header byte per
                                            second for SECONDS, checking /v2/health/ready
                                            answers meanwhile; prints "ok" and how many were
                                            closed by the server
  http_probe.py truncated-multipart PORT PATH   multipart body cut before its closing boundary
"""
import socket
import sys
import time


def status_of(sock):
    data = b""
    sock.settimeout(30)
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return parts[1] if len(parts) > 1 else "closed"


def declared_huge(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
              f"Content-Length: 1073741824\r\n\r\n".encode())
    try:
        s.sendall(b"\0" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    print(status_of(s))


def chunked_huge(port, path, mb):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
              f"Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"\0" * 65536
    try:
        for _ in range(mb * 16):
            s.sendall(b"10000\r\n" + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    print(status_of(s))


def health(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st = status_of(s)
    s.close()
    return st


def slow(port, n, seconds):
    req = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        socks.append(s)
    closed = 0
    t0 = time.time()
    i = 0
    while time.time() - t0 < seconds:
        for s in socks:
            if s is None:
                continue
            try:
                s.send(req[i % len(req):i % len(req) + 1])
            except (BlockingIOError, BrokenPipeError, ConnectionResetError, OSError):
                pass
        i += 1
        if health(port) != "200":
            print("health failed while slow clients were connected")
            return 1
        time.sleep(1)
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except (ConnectionResetError, OSError):
            closed += 1
        s.close()
    if health(port) != "200":
        print("health failed after the slow clients")
        return 1
    print(f"ok {closed} closed by server")
    return 0


def truncated_multipart(port, path):
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"data\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\nabc")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
              f"boundary=XyZ\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
              .encode() + body)
    print(status_of(s))


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "declared-huge":
        declared_huge(port, sys.argv[3])
    elif mode == "chunked-huge":
        chunked_huge(port, sys.argv[3], int(sys.argv[4]))
    elif mode == "slow":
        sys.exit(slow(port, int(sys.argv[3]), float(sys.argv[4])))
    elif mode == "truncated-multipart":
        truncated_multipart(port, sys.argv[3])
    else:
        sys.exit("unknown mode " + mode)
