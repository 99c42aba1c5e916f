package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
)

// writeSession answers 200 with sess, byte for byte what c.JSON(200, sess)
// writes (Session.MarshalJSON through encoding/json's encoder: HTML-safe
// escaping and a final newline) but without reflection and without
// compacting the output twice. A pretty-printed answer (?pretty, or Echo in
// debug mode) and a session the fast encoder refuses (an attribute value
// that is not valid JSON) go through c.JSON, so that they too answer as
// before.
func writeSession(c echo.Context, sess contexts.Session) error {
	if c.Echo().Debug || (c.Request().URL.RawQuery != "" && c.QueryParams().Has("pretty")) {
		return c.JSON(http.StatusOK, sess)
	}
	bp := encodeBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuffer {
			encodeBuffers.Put(bp)
		}
	}()
	b, err := appendSession((*bp)[:0], sess)
	*bp = b
	if err != nil {
		return c.JSON(http.StatusOK, sess)
	}
	*bp = append(b, '\n')
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, *bp)
}

// maxPooledBuffer is the largest encoding buffer kept for reuse: a context
// at the default limit (64 KiB) fits.
const maxPooledBuffer = 80 << 10

var encodeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// errInvalidAttribute is returned by appendSession for an attribute value
// that is not valid JSON.
var errInvalidAttribute = errors.New("attribute value is not valid JSON")

// appendSession appends the wire form of s to b: what json.Marshal(s)
// returns, that is Session.MarshalJSON's fields in order, empty ones
// omitted, times in RFC 3339 UTC with milliseconds, attributes in key order,
// strings and attribute values escaped and compacted as encoding/json does.
func appendSession(b []byte, s contexts.Session) ([]byte, error) {
	b = append(b, `{"sessionId":`...)
	b = appendString(b, s.SessionID)
	b = appendOptional(b, `,"customerId":`, s.CustomerID)
	b = appendOptional(b, `,"siteCode":`, s.SiteCode)
	b = appendOptional(b, `,"currency":`, s.Currency)
	b = appendOptional(b, `,"cartId":`, s.CartID)
	b = appendOptional(b, `,"targetLocation":`, s.TargetLocation)
	b = appendOptional(b, `,"language":`, s.Language)
	if len(s.Context) > 0 {
		var arr [32]string
		keys := arr[:0]
		for k := range s.Context {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"context":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendRaw(b, s.Context[k]); err != nil {
				return b, err
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"metadata":{"version":`...)
	b = strconv.AppendInt(b, s.Metadata.Version, 10)
	b = appendTime(b, `,"createdAt":`, s.Metadata.CreatedAt)
	b = appendTime(b, `,"modifiedAt":`, s.Metadata.ModifiedAt)
	return append(b, "}}"...), nil
}

// appendOptional appends name and s unless s is empty (omitempty).
func appendOptional(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendTime appends name and t as contexts formats it, unless t is zero.
// The formatted time holds nothing that JSON escapes.
func appendTime(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, name...)
	b = append(b, '"')
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = t.AppendFormat(b, events.TimeFormat)
		return append(b, '"')
	}
	// events.TimeFormat in UTC, without parsing the layout.
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1e6, 3)
	return append(b, 'Z', '"')
}

// appendDigits appends n, 0 <= n < 10^width <= 10^4, as width decimal
// digits.
func appendDigits(b []byte, n, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

const hexDigits = "0123456789abcdef"

// htmlSafe reports the ASCII bytes that encoding/json writes as they are in
// a string when it escapes HTML (its default).
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string exactly as encoding/json writes it
// by default: <, > and & escaped, invalid UTF-8 replaced by U+FFFD, U+2028
// and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// rawSpecial are the bytes appendRaw looks at: string delimiters and
// escapes, whitespace, and what encoding/json escapes in compacting.
var rawSpecial = func() (t [256]bool) {
	for _, c := range []byte{'"', '\\', ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2} {
		t[c] = true
	}
	return t
}()

// appendRaw appends an attribute value as encoding/json writes a
// json.RawMessage: null when nil, else validated and compacted, with <, >,
// &, U+2028 and U+2029 escaped (invalid UTF-8 is kept as it is).
func appendRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	if !json.Valid(raw) {
		return b, errInvalidAttribute
	}
	// raw is valid JSON: outside strings there are only tokens and
	// whitespace, inside them no raw control characters.
	start, inString := 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !rawSpecial[c] {
			continue
		}
		switch {
		case c == '"':
			inString = !inString
		case c == '\\':
			i++ // an escape of two bytes, or the start of \uXXXX: neither ends the string
		case !inString: // whitespace between tokens: dropped
			b = append(b, raw[start:i]...)
			start = i + 1
		case c == '<' || c == '>' || c == '&':
			b = append(b, raw[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8:
			b = append(b, raw[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	return append(b, raw[start:]...), nil
}
