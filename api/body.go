package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// object is a request body: a JSON object, its members undecoded.
type object map[string]json.RawMessage

// readObject reads the request body, at most Limits.MaxBodyBytes of it, as
// a JSON object.
func (s *server) readObject(c echo.Context) (object, error) {
	r := c.Request()
	raw, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.limits.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		return nil, badRequest("request body cannot be read")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("request body is required: a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var obj object
	if err := dec.Decode(&obj); err != nil {
		return nil, badRequest("request body must be a JSON object: %s", jsonProblem(err))
	}
	if obj == nil {
		return nil, badRequest("request body must be a JSON object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("request body must hold one JSON object and nothing after it")
	}
	return obj, nil
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		return fmt.Sprintf("got a JSON %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "JSON ends early"
	}
	return err.Error()
}

// present reports whether member name is there and not null.
func (o object) present(name string) bool {
	raw, ok := o[name]
	return ok && !isNull(raw)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// str returns member name as a string: ok is false when it is absent or
// null; anything but a string is a 400 naming field (the member's path).
func (o object) str(name, field string) (value string, ok bool, err error) {
	if !o.present(name) {
		return "", false, nil
	}
	if err := json.Unmarshal(o[name], &value); err != nil {
		return "", false, badRequest("%s must be a string", field)
	}
	return value, true, nil
}

// version reads the required metadata.version: an integer, or a string
// holding one.
func (o object) version() (int64, error) {
	if !o.present("metadata") {
		return 0, badRequest("metadata.version is required")
	}
	var md object
	if err := json.Unmarshal(o["metadata"], &md); err != nil {
		return 0, badRequest("metadata must be an object holding version")
	}
	if !md.present("version") {
		return 0, badRequest("metadata.version is required")
	}
	raw := bytes.TrimSpace(md["version"])
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, badRequest("metadata.version must be an integer or a string holding one")
		}
		text = strings.TrimSpace(text)
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		// Accept an integral number written as a float (1.0, 1e1).
		f, ferr := strconv.ParseFloat(text, 64)
		if ferr != nil || raw[0] == '"' || f != float64(int64(f)) {
			return 0, badRequest("metadata.version must be an integer or a string holding one, got %s", truncate(string(raw), 40))
		}
		v = int64(f)
	}
	if v < 0 {
		return 0, badRequest("metadata.version must not be negative")
	}
	return v, nil
}

// checkKey validates an attribute name: 1 to MaxKeyLen printable characters.
func (s *server) checkKey(key, field string) error {
	n := utf8.RuneCountInString(key)
	if n == 0 || n > s.limits.MaxKeyLen {
		return badRequest("%s must be 1 to %d characters long, got %d", field, s.limits.MaxKeyLen, n)
	}
	if !utf8.ValidString(key) {
		return badRequest("%s must be valid UTF-8", field)
	}
	for _, r := range key {
		if !unicode.IsPrint(r) {
			return badRequest("%s must hold printable characters only, got %q", field, truncate(key, 40))
		}
	}
	return nil
}

// checkValue validates an attribute value (any JSON value but null, at most
// MaxValueBytes as compact JSON) and returns it compacted.
func (s *server) checkValue(raw json.RawMessage, field string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || isNull(raw) {
		return nil, badRequest("%s is required and must not be null", field)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, badRequest("%s is not valid JSON", field)
	}
	if buf.Len() > s.limits.MaxValueBytes {
		return nil, badRequest("%s exceeds the limit of %d bytes (%d bytes)", field, s.limits.MaxValueBytes, buf.Len())
	}
	return json.RawMessage(buf.Bytes()), nil
}

// context reads member "context" when present and not null: an object of
// attributes.
func (s *server) context(o object) (attrs map[string]json.RawMessage, ok bool, err error) {
	if !o.present("context") {
		return nil, false, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(o["context"], &raw); err != nil {
		return nil, false, badRequest("context must be an object of attributes")
	}
	attrs = make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		if err := s.checkKey(k, fmt.Sprintf("context key %q", truncate(k, 40))); err != nil {
			return nil, false, err
		}
		field := fmt.Sprintf("context[%q]", truncate(k, 40))
		if attrs[k], err = s.checkValue(v, field); err != nil {
			return nil, false, err
		}
	}
	return attrs, true, nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
