package db

import (
	"context"
	"strings"
	"testing"
)

// TestQueryPlans: the page queries, the last id of a salon and the cid
// lookup use an index of messages, never a scan of the table nor a sort,
// however large the salon.
func TestQueryPlans(t *testing.T) {
	d := testOpen(t)
	// The very strings the queries run: a copy here could drift from them.
	for name, q := range map[string]string{
		"Latest":      queryLatest,
		"Before":      queryBefore,
		"After":       queryAfter,
		"SalonByName": querySalonByName,
		"Cid":         queryCid,
	} {
		t.Run(name, func(t *testing.T) {
			args := make([]any, strings.Count(q, "?"))
			for i := range args {
				args[i] = 1
			}
			rows, err := d.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			all := strings.Join(plan, "; ")
			if !strings.Contains(all, "messages_by") || strings.Contains(all, "SCAN m") || strings.Contains(all, "SCAN messages") || strings.Contains(all, "TEMP B-TREE") {
				t.Fatalf("plan: %s", all)
			}
			t.Log(all)
		})
	}
}
