package kmsfake

import (
	"slices"
	"sync"
	"testing"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

func TestChangeKeysBetweenPages(t *testing.T) {
	srv, sc := fixture(t, 30)
	p := sc.Projects[0]
	var mu sync.Mutex
	var offsets []int
	srv.OnKeyPage(func(id string, offset int) {
		mu.Lock()
		offsets = append(offsets, offset)
		mu.Unlock()
		if id == p.ID && offset == 10 {
			// The first key is deleted before the second page: the list shifts.
			srv.ChangeKeys(id, func(keys []kmsapi.Key) []kmsapi.Key { return keys[1:] })
		}
	})
	first, total := decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"10","offset":"0"}`))
	second, total2 := decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"10","offset":"10"}`))
	if total != 30 || total2 != 29 {
		t.Errorf("totals %d then %d, want 30 then 29", total, total2)
	}
	if first.Resources[0].ResourceID != p.Keys[0].ID || second.Resources[0].ResourceID != p.Keys[11].ID {
		t.Errorf("second page starts with %s, want the shifted %s", second.Resources[0].ResourceID, p.Keys[11].ID)
	}
	// count is no page: no hook.
	filter(t, srv, sc, p, `{"action":"count"}`)
	if !slices.Equal(offsets, []int{0, 10}) {
		t.Errorf("hook saw offsets %v", offsets)
	}
	if got := srv.Keys(p.ID); len(got) != 29 || got[0].ID != p.Keys[1].ID {
		t.Errorf("Keys: %d keys", len(got))
	}
	if srv.ChangeKeys("nope", func(k []kmsapi.Key) []kmsapi.Key { return k }) || srv.Keys("nope") != nil {
		t.Error("an unknown project changed")
	}
}
