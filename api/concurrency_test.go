package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

const clients = 50

// TestConcurrentAttributes: 50 clients add different attributes to one
// session at once; all succeed and all attributes are there.
func TestConcurrentAttributes(t *testing.T) {
	v := newEnv(t)
	v.anonymous("s1")
	me := shopper(t, "s1", "")
	svc := service(t)
	codes := make([]int, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			path, headers := "/session-context/acme/me/context/attributes", me
			if i%2 == 1 {
				path, headers = "/session-context/acme/context/s1/attributes", svc
			}
			res := v.do(http.MethodPost, path, fmt.Sprintf(`{"key": "k%d", "value": {"i": %d}}`, i, i), headers...)
			codes[i] = res.Code
		})
	}
	wg.Wait()
	for i, c := range codes {
		want := http.StatusCreated
		if i%2 == 1 {
			want = http.StatusNoContent
		}
		if c != want {
			t.Errorf("client %d: status %d, want %d", i, c, want)
		}
	}
	got := v.get("s1")
	if n := len(got.context()); n != clients {
		t.Errorf("%d attributes, want %d", n, clients)
	}
	for i := range clients {
		if a, _ := got.context()[fmt.Sprintf("k%d", i)].(map[string]any); a["i"] != float64(i) {
			t.Errorf("attribute k%d = %v", i, got.context()[fmt.Sprintf("k%d", i)])
		}
	}
	if got.version() != 1+clients {
		t.Errorf("version %d, want %d", got.version(), 1+clients)
	}
}

// TestConcurrentPatches: 50 PATCHes with the same version; exactly one wins,
// the others answer 409 with the new version.
func TestConcurrentPatches(t *testing.T) {
	v := newEnv(t)
	v.anonymous("s1")
	me := shopper(t, "s1", "")
	codes := make([]int, clients)
	current := make([]any, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			res := v.do(http.MethodPatch, "/session-context/acme/me/context",
				fmt.Sprintf(`{"metadata": {"version": 1}, "currency": "C%02d", "context": {"who": %d}}`, i, i), me...)
			codes[i], current[i] = res.Code, res.JSON["currentVersion"]
		})
	}
	wg.Wait()
	winner := -1
	for i, c := range codes {
		switch c {
		case http.StatusNoContent:
			if winner >= 0 {
				t.Errorf("clients %d and %d both won", winner, i)
			}
			winner = i
		case http.StatusConflict:
			if current[i] != float64(2) {
				t.Errorf("client %d: 409 with currentVersion %v, want 2", i, current[i])
			}
		default:
			t.Errorf("client %d: status %d", i, c)
		}
	}
	if winner < 0 {
		t.Fatal("no PATCH won")
	}
	got := v.get("s1")
	if got.version() != 2 || got.str("currency") != fmt.Sprintf("C%02d", winner) || got.context()["who"] != float64(winner) {
		t.Errorf("context %s, want the winner %d's values at version 2", got.Raw, winner)
	}
}
