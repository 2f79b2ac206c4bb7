"""Uploads for bench/wal.sh: `uploads.py PORT COOKIES N FILE` sends N uploads of FILE (each
with a first line of its own, so no two are equal) into the sessions whose cookie values are the
lines of COOKIES, in turn, keeping each session's cookie up to date (textdrop gives a new key on
every upload; a peer that keeps its key sends none). One connection, keep-alive, as a browser.
Exits non-zero on any answer other than 303."""

import http.client
import sys

port, cookies_path, count, file_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
cookies = [line.strip() for line in open(cookies_path) if line.strip()]
text = open(file_path, "rb").read()
conn = http.client.HTTPConnection("127.0.0.1", int(port))
for n in range(count):
    slot = n % len(cookies)
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"textfile\"; filename=\"bench.txt\"\r\n"
        b"Content-Type: text/plain\r\n\r\nupload %d\n" % n
        + text
        + b"\r\n--XyZ--\r\n"
    )
    conn.request(
        "POST",
        "/",
        body=body,
        headers={
            "Cookie": "id=" + cookies[slot],
            "Content-Type": "multipart/form-data; boundary=XyZ",
        },
    )
    answer = conn.getresponse()
    answer.read()
    if answer.status != 303:
        sys.exit(f"upload {n}: status {answer.status}")
    for value in answer.headers.get_all("Set-Cookie") or []:
        if value.startswith("id="):
            cookies[slot] = value[3:].split(";", 1)[0]
with open(cookies_path, "w") as out:
    out.write("\n".join(cookies) + "\n")
