package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// httpError is an answer decided by a handler: its status and message.
type httpError struct {
	Status  int
	Message string
	// Err is the cause, for the log; it is never shown to the client beyond
	// Message.
	Err error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *httpError) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) error {
	return &httpError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &httpError{Status: http.StatusForbidden, Message: fmt.Sprintf(format, args...)}
}

func unauthorized(msg string, err error) error {
	return &httpError{Status: http.StatusUnauthorized, Message: msg, Err: err}
}

// errorBody is the wire form of every error answer.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	// SessionID is set on 404 and 409 answers about a session.
	SessionID string `json:"sessionId,omitempty"`
	// CurrentVersion is set on version conflicts.
	CurrentVersion *int64 `json:"currentVersion,omitempty"`
}

// sessionKey is the echo.Context key under which handlers record the session
// a request is about, so that 404 and 409 answers can name it.
const sessionKey = "sessionctx.sessionId"

// classify maps any error a handler returns to its answer. It is the one
// place where errors become statuses.
func classify(err error) (errorBody, bool) {
	var (
		he       *httpError
		conflict *contexts.VersionConflictError
		echoErr  *echo.HTTPError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &he):
		return errorBody{Code: he.Status, Message: he.Message}, false
	case errors.As(err, &tooLarge):
		return errorBody{Code: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit)}, false
	case errors.Is(err, auth.ErrInvalidToken):
		return errorBody{Code: http.StatusUnauthorized, Message: err.Error()}, false
	case errors.As(err, &conflict):
		v := conflict.Current
		return errorBody{Code: http.StatusConflict, Message: fmt.Sprintf("metadata.version is stale: the current version is %d", v), CurrentVersion: &v}, false
	case errors.Is(err, contexts.ErrEnded):
		return errorBody{Code: http.StatusConflict, Message: "the session has ended; an ended session is never recreated"}, false
	case errors.Is(err, contexts.ErrNoAttribute):
		return errorBody{Code: http.StatusNotFound, Message: "attribute not found"}, false
	case errors.Is(err, contexts.ErrNotFound):
		return errorBody{Code: http.StatusNotFound, Message: "session context not found"}, false
	case errors.Is(err, contexts.ErrUnknownTenant):
		return errorBody{Code: http.StatusNotFound, Message: "tenant is not configured"}, false
	case errors.Is(err, contexts.ErrLimit):
		return errorBody{Code: http.StatusBadRequest, Message: limitMessage(err)}, false
	case errors.As(err, &echoErr):
		msg := http.StatusText(echoErr.Code)
		if m, ok := echoErr.Message.(string); ok && m != "" {
			msg = m
		}
		return errorBody{Code: echoErr.Code, Message: msg}, echoErr.Code >= 500
	case unavailable(err):
		return errorBody{Code: http.StatusServiceUnavailable, Message: "the session store is unavailable; retry later"}, true
	}
	return errorBody{Code: http.StatusInternalServerError, Message: "internal error"}, true
}

// limitMessage keeps the store's description of the limit.
func limitMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, contexts.ErrLimit.Error()+": "); i >= 0 {
		return msg[i:]
	}
	return msg
}

// unavailable reports whether err means that Redis cannot be reached or
// cannot serve right now.
func unavailable(err error) bool {
	var netErr net.Error
	var rErr redis.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true
	case errors.As(err, &rErr):
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"} {
			if strings.HasPrefix(rErr.Error(), p) {
				return true
			}
		}
	}
	return false
}

// handleError is Echo's HTTPErrorHandler: it writes the error body, adding
// the session id to 404 and 409 answers and Retry-After to 503 answers.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	body, serverSide := classify(err)
	if body.Code == http.StatusNotFound || body.Code == http.StatusConflict {
		if sid, ok := c.Get(sessionKey).(string); ok {
			body.SessionID = sid
		}
	}
	h := c.Response().Header()
	switch body.Code {
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", retryAfterSeconds)
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="sessionctx"`)
	}
	if serverSide {
		c.Set(errorLogKey, err)
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(body.Code)
	} else {
		werr = c.JSON(body.Code, body)
	}
	if werr != nil {
		s.log.Error("write error answer", "err", werr)
	}
}

// errorLogKey marks a request whose server-side error must be logged.
const errorLogKey = "sessionctx.error"
