package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// httpConn is a minimal HTTP/1.1 client on one keep-alive connection, for
// the load generator: it writes prepared requests and reads only the status,
// the length and the body, so that the load generator takes as little CPU
// as it can from the servers it measures (net/http's client took about as
// much CPU per request as the server answering it).
type httpConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

// do sends one request (a whole HTTP/1.1 message) and returns the answer's
// status. On any error the connection is closed, and the next call dials
// again.
func (h *httpConn) do(req []byte, timeout time.Duration) (int, error) {
	if h.conn == nil {
		c, err := net.DialTimeout("tcp", h.addr, timeout)
		if err != nil {
			return 0, err
		}
		h.conn, h.r = c, bufio.NewReaderSize(c, 16<<10)
	}
	status, err := h.roundTrip(req, timeout)
	if err != nil {
		h.close()
	}
	return status, err
}

func (h *httpConn) roundTrip(req []byte, timeout time.Duration) (int, error) {
	if err := h.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	if _, err := h.conn.Write(req); err != nil {
		return 0, err
	}
	line, err := h.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closing := -1, false, false
	for {
		line, err := h.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = h.discardChunks()
	case length >= 0:
		_, err = h.r.Discard(length)
	default:
		return 0, errors.New("answer without a length")
	}
	if err != nil {
		return 0, err
	}
	if closing {
		h.close()
	}
	return status, nil
}

func (h *httpConn) discardChunks() error {
	for {
		line, err := h.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(line, []byte(";"), 2)[0])), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if _, err := h.r.Discard(int(size) + 2); err != nil { // the chunk and its CRLF
			return err
		}
		if size == 0 {
			return nil
		}
	}
}

func (h *httpConn) close() {
	if h.conn != nil {
		_ = h.conn.Close()
		h.conn, h.r = nil, nil
	}
}

// appendRequest appends an HTTP/1.1 request to dst.
func appendRequest(dst []byte, method, host, path, token string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUser-Agent: sessionctx-bench\r\n"...)
	if token != "" {
		dst = append(dst, "Authorization: Bearer "...)
		dst = append(dst, token...)
		dst = append(dst, "\r\n"...)
	}
	if body != nil {
		dst = append(dst, "Content-Type: application/json\r\nContent-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}
