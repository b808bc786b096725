package collector

import (
	"math"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// callCounter is implemented by collectors whose fetch for a target may
// take more than one API call (the keys collector: one per 1,000 keys).
// Others take one.
type callCounter interface {
	calls(target string) int
}

// budget warns, once per credential, when the API calls one scrape needs
// cannot all leave within the scrape's time at the credential's rate limit:
// that scrape is bound to fail however fast the API answers.
type budget struct {
	logger log.Logger
	warned sync.Map // *kmsapi.Credential -> true
}

// checkBudget counts, per credential, the calls this scrape will make
// (fetches not served from the cache, and project lookups not done yet),
// and compares them with what the rate limit lets through before the
// scrape's deadline: the burst plus requests per second times the time left.
func (s *scrape) checkBudget() {
	deadline, ok := s.ctx.Deadline()
	if !ok {
		return
	}
	e := s.e
	calls := map[*kmsapi.Credential]int{}
	for _, t := range s.targets {
		n := 0
		t.mu.Lock()
		if t.client == nil && t.ProjectID == "" {
			n++
		}
		t.mu.Unlock()
		for _, c := range e.enabled {
			if emit, _ := e.results.fresh(resultKey{t.Name, c.name()}, c.reuse()); emit != nil {
				continue
			}
			if cc, ok := c.(callCounter); ok {
				n += cc.calls(t.Name)
			} else {
				n++
			}
		}
		calls[t.Credential] += n
	}
	left := time.Until(deadline)
	for cred, n := range calls {
		fit := cred.Burst() + int(math.Floor(cred.RequestsPerSecond()*left.Seconds()))
		if n <= fit {
			continue
		}
		if _, dup := e.budget.warned.LoadOrStore(cred, true); dup {
			continue
		}
		level.Warn(e.budget.logger).Log("msg", "the API calls of a scrape do not fit in the scrape timeout at the credential's rate limit: scrapes will time out; list keys less often with --collector.keys.refresh-interval, reuse results with --kms.cache-ttl, or raise --kms.requests-per-second (the API allows 20 per account) or the scrape timeout",
			"credentials", cred.Name(), "calls", n, "fit", fit, "requests_per_second", cred.RequestsPerSecond(), "timeout", left.Round(time.Millisecond))
	}
}
