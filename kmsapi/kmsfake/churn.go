package kmsfake

import (
	"sync"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// OnKeyPage has fn called before the fake answers each resource_instances
// filter request, with the project and the offset asked: a test changes
// the keys there with ChangeKeys, as automation on a busy account does
// between two page requests. fn runs without the fake's locks and may be
// called concurrently. nil removes it.
func (s *Server) OnKeyPage(fn func(projectID string, offset int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onKeyPage = fn
}

func (s *Server) keyPageHook(projectID string, offset int) {
	s.mu.Lock()
	fn := s.onKeyPage
	s.mu.Unlock()
	if fn != nil {
		fn(projectID, offset)
	}
}

// ChangeKeys replaces the keys of the project projectID by what fn returns
// from a copy of the current ones: keys created, deleted or moved. Each
// answer is served from the keys of one moment, before or after a change.
// Quotas and the instance count stay as they are. It reports false for
// an unknown project.
func (s *Server) ChangeKeys(projectID string, fn func(keys []kmsapi.Key) []kmsapi.Key) bool {
	p := s.projects[projectID]
	if p == nil {
		return false
	}
	p.changeMu.Lock()
	defer p.changeMu.Unlock()
	cur := p.keys().keys
	p.set.Store(newKeySet(fn(append([]kmsapi.Key(nil), cur...)), p.Region))
	return true
}

// Keys returns the current keys of the project projectID, in the order
// the API lists them; nil for an unknown project.
func (s *Server) Keys(projectID string) []kmsapi.Key {
	p := s.projects[projectID]
	if p == nil {
		return nil
	}
	return append([]kmsapi.Key(nil), p.keys().keys...)
}

// Churn changes the keys of one project before every key page the fake
// answers, as automation on a busy account does, and remembers what it did.
type Churn struct {
	change func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int)

	mu      sync.Mutex
	n       int
	changed int
	ever    map[string]bool
}

// StartChurn sets the key page hook to apply change number n (from 0) to
// the keys of projectID; change returns the keys after it and how many
// keys it created or deleted.
func (s *Server) StartChurn(projectID string, change func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int)) *Churn {
	c := &Churn{change: change, ever: map[string]bool{}}
	for _, k := range s.Keys(projectID) {
		c.ever[k.ID] = true
	}
	s.OnKeyPage(func(id string, _ int) {
		if id != projectID {
			return
		}
		s.ChangeKeys(id, func(keys []kmsapi.Key) []kmsapi.Key {
			c.mu.Lock()
			defer c.mu.Unlock()
			keys, d := c.change(c.n, keys)
			c.n++
			c.changed += d
			for _, k := range keys {
				c.ever[k.ID] = true
			}
			return keys
		})
	})
	return c
}

// Changed is how many keys were created or deleted so far.
func (c *Churn) Changed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Existed reports whether the key id existed at some point.
func (c *Churn) Existed(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ever[id]
}
