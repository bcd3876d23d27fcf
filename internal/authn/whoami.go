package authn

import (
	"net/http"

	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/internal/httpapi"
)

// GET /auth/whoami: the first call a front-end makes.

// HandleWhoami answers GET /auth/whoami with the caller's Principal,
// trying every configured authenticator: in name order, those that call a
// remote service last.
func (s *Set) HandleWhoami(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	order := s.whoami
	s.mu.RUnlock()
	p, ok := s.authenticate(w, r, s.list(order), auth.Rule{})
	if !ok {
		return
	}
	out := *p
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	if out.Claims == nil {
		out.Claims = map[string]any{}
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, &out)
}
