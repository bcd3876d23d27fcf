package marketplace

import "net/http"

// writeAPIError answers the Marketplace and Integration APIs' error body,
// {"errors": [{"id", "status", "code", "title"}]}, in the encoding r asked for.
func writeAPIError(w http.ResponseWriter, r *http.Request, status int, code, title string) {
	writeAPI(w, r, status, map[string]any{"errors": []any{map[string]any{
		"id": uuidValue(newUUID()), "status": status, "code": code, "title": title,
	}}})
}

// handleCurrentUserShow answers GET /v1/api/current_user/show for a user
// token; anonymous and integration tokens are forbidden.
func (m *Marketplace) handleCurrentUserShow(w http.ResponseWriter, r *http.Request) {
	raw, ok := bearer(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at := m.lookupAccess(raw)
	if at == nil {
		writeAPIError(w, r, http.StatusUnauthorized, "auth-invalid-access-token", "Invalid access token")
		return
	}
	if at.userID == "" || (at.scope != ScopeUser && at.scope != ScopeTrustedUser) {
		writeAPIError(w, r, http.StatusForbidden, "forbidden", "Forbidden")
		return
	}
	u := m.users[at.userID]
	if u == nil {
		writeAPIError(w, r, http.StatusNotFound, "not-found", "Not found")
		return
	}
	writeAPI(w, r, http.StatusOK, map[string]any{"data": currentUser(u)})
}

// currentUser is the currentUser resource of u: the user as they see
// themselves, extended data included.
func currentUser(u *user) map[string]any {
	p := u.profile
	var bio any
	if p.Bio != "" {
		bio = p.Bio
	}
	state := "active"
	if u.banned {
		state = "banned"
	}
	return map[string]any{
		"id":   uuidValue(u.id),
		"type": keyword("currentUser"),
		"attributes": map[string]any{
			"banned":               u.banned,
			"deleted":              false,
			"state":                state,
			"createdAt":            timestamp(u.createdAt),
			"email":                u.email,
			"emailVerified":        u.emailVerified,
			"pendingEmail":         nil,
			"stripeConnected":      false,
			"stripePayoutsEnabled": false,
			"stripeChargesEnabled": false,
			"identityProviders":    []any{},
			"profile": map[string]any{
				"firstName":       p.FirstName,
				"lastName":        p.LastName,
				"displayName":     p.DisplayName,
				"abbreviatedName": abbreviatedName(p.FirstName, p.LastName),
				"bio":             bio,
				"publicData":      orEmpty(p.PublicData),
				"protectedData":   orEmpty(p.ProtectedData),
				"privateData":     orEmpty(p.PrivateData),
				"metadata":        orEmpty(p.Metadata),
			},
		},
	}
}

// orEmpty makes nil extended data render as {} as the API does.
func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
