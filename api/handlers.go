package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// authenticate verifies the bearer token and that it is for the path's
// tenant, and returns its claims and the tenant's configuration.
func (s *server) authenticate(c echo.Context) (auth.Claims, contexts.Tenant, error) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return auth.Claims{}, contexts.Tenant{}, unauthorized("the Authorization header with a bearer token is required", nil)
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return auth.Claims{}, contexts.Tenant{}, unauthorized("the Authorization header must be \"Bearer <token>\"", nil)
	}
	claims, err := s.verifier.Verify(c.Request().Context(), token)
	if err != nil {
		return auth.Claims{}, contexts.Tenant{}, unauthorized(err.Error(), nil)
	}
	name, err := pathParam(c, "tenant")
	if err != nil {
		return auth.Claims{}, contexts.Tenant{}, err
	}
	if !events.ValidTenant(name) {
		return auth.Claims{}, contexts.Tenant{}, badRequest("tenant must match ^[a-z][a-z0-9]+$ with 3 to 16 characters")
	}
	if claims.Tenant == "" {
		return auth.Claims{}, contexts.Tenant{}, forbidden("the token names no tenant")
	}
	if claims.Tenant != name {
		return auth.Claims{}, contexts.Tenant{}, forbidden("the token is not valid for tenant %q", truncate(name, 40))
	}
	t, err := s.tenants.Lookup(name)
	if err != nil {
		return auth.Claims{}, contexts.Tenant{}, err
	}
	return claims, t, nil
}

// manager authenticates a management request: a token of the tenant with the
// management scope, and a well-formed path sessionId.
func (s *server) manager(c echo.Context) (contexts.Tenant, string, error) {
	sid, err := pathParam(c, "sessionId")
	if err != nil {
		return contexts.Tenant{}, "", err
	}
	valid := events.ValidSessionID(sid)
	if valid {
		c.Set(sessionKey, sid)
	}
	claims, t, err := s.authenticate(c)
	if err != nil {
		return contexts.Tenant{}, "", err
	}
	if !claims.CanManage() {
		return contexts.Tenant{}, "", forbidden("the token lacks the scope %s", auth.ScopeManage)
	}
	if !valid {
		return contexts.Tenant{}, "", badRequest("sessionId must match ^[A-Za-z0-9._-]{1,128}$")
	}
	return t, sid, nil
}

// pathParam returns a path parameter URL-decoded exactly once. Echo routes on
// the raw path when the request has one (then its parameters are still
// encoded) and on the decoded path otherwise.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", badRequest("%s is not validly URL-encoded", name)
	}
	return d, nil
}

// shopper authenticates a /me request: the token's sid is the session, its
// sub (if any) the customer.
func (s *server) shopper(c echo.Context) (contexts.Tenant, string, contexts.Access, error) {
	claims, t, err := s.authenticate(c)
	if err != nil {
		return contexts.Tenant{}, "", contexts.Access{}, err
	}
	if claims.SessionID == "" {
		return contexts.Tenant{}, "", contexts.Access{}, forbidden("the token names no session (sid)")
	}
	if !events.ValidSessionID(claims.SessionID) {
		return contexts.Tenant{}, "", contexts.Access{}, forbidden("the token's sid is not a valid session id")
	}
	c.Set(sessionKey, claims.SessionID)
	access := contexts.Access{Kind: contexts.AccessAnonymous}
	if claims.Subject != "" {
		access = contexts.Access{Kind: contexts.AccessCustomer, CustomerID: claims.Subject}
	}
	return t, claims.SessionID, access, nil
}

// GET /session-context/:tenant/context/:sessionId
func (s *server) getContext(c echo.Context) error {
	t, sid, err := s.manager(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	sess, err := s.store.Get(ctx, t, sid)
	if err != nil {
		return err
	}
	return writeSession(c, sess)
}

// GET /session-context/:tenant/me/context
func (s *server) getMyContext(c echo.Context) error {
	t, sid, access, err := s.shopper(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	sess, err := s.store.Get(ctx, t, sid)
	if err != nil {
		return err
	}
	if !access.CanSee(sess) {
		return contexts.ErrNotFound
	}
	return writeSession(c, sess)
}

// wireField is a context field: its name on the wire and in the store.
type wireField struct {
	name  string
	field contexts.Field
}

var (
	// patchFields are the fields PATCH applies.
	patchFields = []wireField{
		{"siteCode", contexts.FieldSiteCode},
		{"currency", contexts.FieldCurrency},
		{"targetLocation", contexts.FieldTargetLocation},
		{"language", contexts.FieldLanguage},
	}
	// putFields are the fields PUT replaces.
	putFields = append(patchFields[:len(patchFields):len(patchFields)], wireField{"cartId", contexts.FieldCartID})
)

// versionedBody reads a PUT or PATCH body and its required metadata.version.
func (s *server) versionedBody(c echo.Context) (object, int64, error) {
	body, err := s.readObject(c)
	if err != nil {
		return nil, 0, err
	}
	version, err := body.version()
	return body, version, err
}

// PATCH /session-context/:tenant/me/context
func (s *server) patchMyContext(c echo.Context) error {
	t, sid, access, err := s.shopper(c)
	if err != nil {
		return err
	}
	body, version, err := s.versionedBody(c)
	if err != nil {
		return err
	}
	edit := contexts.Edit{Access: access, Version: &version, Set: map[contexts.Field]string{}}
	for _, f := range patchFields {
		v, ok, err := body.str(f.name, f.name)
		if err != nil {
			return err
		}
		if ok {
			edit.Set[f.field] = v
		}
	}
	if edit.Context, edit.ReplaceContext, err = s.context(body); err != nil {
		return err
	}
	if err := s.edit(c, t, sid, edit); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// PUT /session-context/:tenant/context/:sessionId[?upsert=true]
func (s *server) putContext(c echo.Context) error {
	t, sid, err := s.manager(c)
	if err != nil {
		return err
	}
	body, version, err := s.versionedBody(c)
	if err != nil {
		return err
	}
	if bodySID, ok, err := body.str("sessionId", "sessionId"); err != nil {
		return err
	} else if ok && bodySID != sid {
		return badRequest("sessionId in the body differs from the path's")
	}
	customer, _, err := body.str("customerId", "customerId")
	if err != nil {
		return err
	}
	if customer != "" && !events.ValidCustomerID(customer) {
		return badRequest("customerId must be 1 to 128 printable characters without spaces, braces or commas")
	}
	edit := contexts.Edit{Access: contexts.Access{Kind: contexts.AccessService}, Version: &version, Set: map[contexts.Field]string{}}
	for _, f := range putFields {
		v, _, err := body.str(f.name, f.name)
		if err != nil {
			return err
		}
		edit.Set[f.field] = v // omitted means cleared
	}
	if edit.Context, _, err = s.context(body); err != nil {
		return err
	}
	edit.ReplaceContext = true

	ctx, cancel := s.storeCtx(c)
	defer cancel()
	owner := customer
	switch sess, err := s.store.Get(ctx, t, sid); {
	case err == nil:
		if customer != "" && customer != sess.CustomerID {
			return badRequest("customerId differs from the context's customerId")
		}
		owner = sess.CustomerID
	case errors.Is(err, contexts.ErrNotFound) && strings.EqualFold(c.QueryParam("upsert"), "true"):
		edit.Upsert = &contexts.Upsert{CustomerID: customer}
	default:
		return err
	}
	if owner != "" {
		if err := s.checkSaasToken(c, t, owner); err != nil {
			return err
		}
	}
	// A login between the read and the edit must not slip past the check above.
	edit.ExpectCustomerID = &owner
	if _, err := s.store.Edit(ctx, t, sid, edit); err != nil {
		var claimed *contexts.CustomerError
		if !errors.As(err, &claimed) {
			return err
		}
		// A customer logged in before the cart: the context will be theirs.
		if err := s.checkSaasToken(c, t, claimed.Stored); err != nil {
			return err
		}
		return badRequest("customerId must name the customer the session belongs to")
	}
	return c.NoContent(http.StatusNoContent)
}

// checkSaasToken requires a saas-token header whose subject is customer.
func (s *server) checkSaasToken(c echo.Context, t contexts.Tenant, customer string) error {
	h := strings.TrimSpace(c.Request().Header.Get("saas-token"))
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		h = strings.TrimSpace(token)
	}
	if h == "" {
		return badRequest("the saas-token header is required: the context belongs to a customer")
	}
	claims, err := s.saas.Verify(c.Request().Context(), h)
	if err != nil {
		return unauthorized("saas-token: "+err.Error(), nil)
	}
	// Customer ids are the tenant's own: a saas-token that names no tenant
	// would prove the customer of every tenant.
	if claims.Tenant != t.Name {
		return forbidden("the saas-token is not valid for tenant %q", t.Name)
	}
	if claims.Subject != customer {
		return forbidden("the saas-token belongs to another customer")
	}
	return nil
}

// attribute reads an attribute POST body: {"key": ..., "value": ...}.
func (s *server) attribute(c echo.Context) (string, json.RawMessage, error) {
	body, err := s.readObject(c)
	if err != nil {
		return "", nil, err
	}
	key, ok, err := body.str("key", "key")
	if err != nil {
		return "", nil, err
	}
	if !ok {
		return "", nil, badRequest("key is required")
	}
	if err := s.checkKey(key, "key"); err != nil {
		return "", nil, err
	}
	value, err := s.checkValue(body["value"], "value")
	if err != nil {
		return "", nil, err
	}
	return key, value, nil
}

// POST /session-context/:tenant/context/:sessionId/attributes
func (s *server) postAttribute(c echo.Context) error {
	t, sid, err := s.manager(c)
	if err != nil {
		return err
	}
	if _, err := s.setAttribute(c, t, sid, contexts.Access{Kind: contexts.AccessService}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// POST /session-context/:tenant/me/context/attributes
func (s *server) postMyAttribute(c echo.Context) error {
	t, sid, access, err := s.shopper(c)
	if err != nil {
		return err
	}
	key, err := s.setAttribute(c, t, sid, access)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, key)
}

// setAttribute sets the attribute of the request's body and returns its key.
func (s *server) setAttribute(c echo.Context, t contexts.Tenant, sid string, access contexts.Access) (string, error) {
	key, value, err := s.attribute(c)
	if err != nil {
		return "", err
	}
	return key, s.edit(c, t, sid, contexts.Edit{Access: access, SetAttributes: map[string]json.RawMessage{key: value}})
}

// DELETE /session-context/:tenant/context/:sessionId/attributes/:attributeName
func (s *server) deleteAttribute(c echo.Context) error {
	t, sid, err := s.manager(c)
	if err != nil {
		return err
	}
	return s.removeAttribute(c, t, sid, contexts.Access{Kind: contexts.AccessService})
}

// DELETE /session-context/:tenant/me/context/attributes/:attributeName
func (s *server) deleteMyAttribute(c echo.Context) error {
	t, sid, access, err := s.shopper(c)
	if err != nil {
		return err
	}
	return s.removeAttribute(c, t, sid, access)
}

func (s *server) removeAttribute(c echo.Context, t contexts.Tenant, sid string, access contexts.Access) error {
	name, err := pathParam(c, "attributeName")
	if err != nil {
		return err
	}
	if err := s.checkKey(name, "attributeName"); err != nil {
		return err
	}
	if err := s.edit(c, t, sid, contexts.Edit{Access: access, DeleteAttribute: name}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// edit applies an edit within the store's timeout.
func (s *server) edit(c echo.Context, t contexts.Tenant, sid string, e contexts.Edit) error {
	ctx, cancel := s.storeCtx(c)
	defer cancel()
	_, err := s.store.Edit(ctx, t, sid, e)
	return err
}
