package kmsfake

import (
	"net/http"
	"net/url"
	"strconv"
)

// SetProjectPageSize makes GET /v3/auth/projects answer in pages of n
// projects linked by links.next; 0 (the default) answers in one page.
func (s *Server) SetProjectPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.projectPage = max(n, 0)
}

// HideProjects leaves the projects of these IDs out of GET
// /v3/auth/projects from now on (KMS still serves them), as if they did not
// exist yet; no IDs shows every project again.
func (s *Server) HideProjects(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hidden = map[string]bool{}
	for _, id := range ids {
		s.hidden[id] = true
	}
}

// iamProjectJSON is a project as IAM lists it.
type iamProjectJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DomainID    string `json:"domain_id"`
	ParentID    string `json:"parent_id"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	IsDomain    bool   `json:"is_domain"`
}

// projectJSON is a project of the account, enabled, under the domain.
func (s *Server) projectJSON(id, name string) iamProjectJSON {
	return iamProjectJSON{ID: id, Name: name, DomainID: s.domainID, ParentID: s.domainID, Enabled: true}
}

// listAuthProjects answers GET /v3/auth/projects: every project of the
// account, KMS ones first, from the one after ?marker= on.
func (s *Server) listAuthProjects(rw *responder, r *http.Request) {
	s.mu.Lock()
	hidden := s.hidden
	s.mu.Unlock()
	all := make([]iamProjectJSON, 0, len(s.order)+len(s.others))
	for _, p := range s.order {
		if !hidden[p.ID] {
			all = append(all, s.projectJSON(p.ID, p.IAMName()))
		}
	}
	for _, p := range s.others {
		if !hidden[p.ID] {
			all = append(all, s.projectJSON(p.ID, p.Name))
		}
	}
	start := 0
	if m := r.URL.Query().Get("marker"); m != "" {
		start = -1
		for i, p := range all {
			if p.ID == m {
				start = i + 1
				break
			}
		}
		if start < 0 {
			rw.iamError(http.StatusBadRequest, "Bad Request", "Invalid marker.")
			return
		}
	}
	s.mu.Lock()
	size := s.projectPage
	s.mu.Unlock()
	page := all[start:]
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	self := scheme + "://" + r.Host + "/v3/auth/projects"
	var next any // JSON null on the last page, as Keystone answers
	if size > 0 && len(page) > size {
		page = page[:size]
		next = self + "?limit=" + strconv.Itoa(size) + "&marker=" + url.QueryEscape(page[size-1].ID)
	}
	rw.json(http.StatusOK, map[string]any{
		"projects": page,
		"links":    map[string]any{"self": self, "next": next, "previous": nil},
	})
}
