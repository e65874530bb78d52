// Package docs_test keeps the operator documentation true to the code: docs/pipeline.md
// must have a section with a dump excerpt for every table declared in apps/pipeline.go,
// and every flow it shows must be a line of the golden dumps in apps/testdata.
package docs_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/topology"
)

// section is one "### <id> <NAME>" section of pipeline.md, under a "## <bridge>" heading.
type section struct {
	bridge string
	id     string
	name   string
	flows  []string // the lines of its code blocks that are flows
}

var (
	bridgeHeading = regexp.MustCompile(`^## (br-[a-z]+)\s*$`)
	tableHeading  = regexp.MustCompile(`^### (\d+) ([A-Z][A-Z0-9_]*)\b`)
)

func readSections(t *testing.T) ([]section, []string) {
	t.Helper()
	f, err := os.Open("pipeline.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var secs []section
	var all []string
	bridge, inCode := "", false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			if strings.HasPrefix(l, "cookie=") {
				all = append(all, l)
				if len(secs) > 0 {
					secs[len(secs)-1].flows = append(secs[len(secs)-1].flows, l)
				}
			}
			continue
		}
		if m := bridgeHeading.FindStringSubmatch(l); m != nil {
			bridge = m[1]
		} else if strings.HasPrefix(l, "## ") {
			bridge = ""
		}
		if m := tableHeading.FindStringSubmatch(l); m != nil && bridge != "" {
			secs = append(secs, section{bridge: bridge, id: m[1], name: m[2]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return secs, all
}

// TestPipelineDocNamesEveryTable: one section per declared table, under its bridge, with
// its number and name, showing at least one flow of that table; and no section for a
// table that is not declared.
func TestPipelineDocNamesEveryTable(t *testing.T) {
	secs, _ := readSections(t)
	seen := map[string]bool{}
	for _, s := range secs {
		key := s.bridge + "/" + s.id
		if seen[key] {
			t.Errorf("pipeline.md: two sections for %s table %s", s.bridge, s.id)
		}
		seen[key] = true
		var id int
		if _, err := fmt.Sscan(s.id, &id); err != nil || id > 255 {
			t.Errorf("pipeline.md: %s section %q: bad table number", s.bridge, s.id)
			continue
		}
		tb, ok := apps.TableOf(topology.Bridge(s.bridge), uint8(id))
		if !ok {
			t.Errorf("pipeline.md: section %s %s %s: no such table in apps/pipeline.go", s.bridge, s.id, s.name)
			continue
		}
		if tb.Name != s.name {
			t.Errorf("pipeline.md: %s table %s is called %s, apps/pipeline.go says %s", s.bridge, s.id, s.name, tb.Name)
		}
		shown := false
		for _, f := range s.flows {
			shown = shown || strings.Contains(f, "table="+tb.Name+",")
		}
		if !shown {
			t.Errorf("pipeline.md: section %s %d %s has no dump excerpt with a flow of the table", s.bridge, id, tb.Name)
		}
	}
	for _, b := range topology.Bridges() {
		for _, tb := range apps.Tables(b) {
			if !seen[fmt.Sprintf("%s/%d", b, tb.ID)] {
				t.Errorf("pipeline.md: no section \"### %d %s\" under \"## %s\"", tb.ID, tb.Name, b)
			}
		}
	}
}

// TestPipelineDocFlowsAreReal: every flow line of pipeline.md is a line of a golden dump,
// so the excerpts change when the flows do.
func TestPipelineDocFlowsAreReal(t *testing.T) {
	golden := map[string]bool{}
	files, err := filepath.Glob("../apps/testdata/*/*.flows")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden dumps under apps/testdata: %v", err)
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			golden[l] = true
		}
	}
	_, all := readSections(t)
	if len(all) < 20 {
		t.Fatalf("pipeline.md shows only %d flows", len(all))
	}
	for _, l := range all {
		if !golden[l] {
			t.Errorf("pipeline.md shows a flow that is in no golden dump (regenerate the excerpt from apps/testdata):\n%s", l)
		}
	}
}
