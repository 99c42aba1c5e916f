package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHTTPConn: the load generator's client reads answers of every framing
// net/http writes, keeps its connection across them, and dials again after
// the server closes it.
func TestHTTPConn(t *testing.T) {
	var conns int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			fmt.Fprint(w, `{"ok":true}`)
		case "/chunked":
			for range 3 {
				fmt.Fprint(w, strings.Repeat("x", 5000))
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		case "/post":
			if r.Header.Get("Authorization") != "Bearer tok" || r.ContentLength != 7 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns++
		}
	}
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := &httpConn{addr: host}
	defer c.close()
	cases := []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/length", "", "", 200},
		{"GET", "/chunked", "", "", 200},
		{"GET", "/missing", "", "", 404},
		{"POST", "/post", "tok", `"value"`, 201},
		{"POST", "/post", "", `"value"`, 400},
		{"GET", "/close", "", "", 200},
		{"GET", "/length", "", "", 200},
	}
	for _, tc := range cases {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		got, err := c.do(appendRequest(nil, tc.method, host, tc.path, tc.token, body), 5*time.Second)
		if err != nil || got != tc.want {
			t.Fatalf("%s %s: status %d, %v; want %d", tc.method, tc.path, got, err, tc.want)
		}
	}
	if conns != 2 {
		t.Errorf("%d connections, want 2: one kept alive until the server closed it, then one more", conns)
	}
}
