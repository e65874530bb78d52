package northbound

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// revisioned maps the collections whose resources have a revision_number to their kind:
// an If-Match: revision_number=N on a PUT or DELETE of one of them (and on a router's
// add/remove_router_interface) constrains the write to revision N.
var revisioned = map[string]topology.Kind{
	"networks":             topology.KindNetwork,
	"subnets":              topology.KindSubnet,
	"subnetpools":          topology.KindSubnetPool,
	"ports":                topology.KindPort,
	"routers":              topology.KindRouter,
	"floatingips":          topology.KindFloatingIP,
	"security-groups":      topology.KindSecurityGroup,
	"security-group-rules": topology.KindSecurityGroupRule,
}

// etagRE is how WebOb finds the entity tags of an If-Match header.
var etagRE = regexp.MustCompile(`(?:^|\s)(W/)?"((?:\\"|.)*?)"`)

func badIfMatch(msg string) error {
	return &db.Error{Class: db.ClassInvalid, Type: "BadRequest", Message: "Bad if-match request: " + msg + "."}
}

// parseIfMatch returns the revision an If-Match header (its lines joined) constrains to,
// as Neutron reads it through WebOb: "*" or no revision_number= tag is no constraint; the
// value is one tag unless it holds quoted ones, of which weak (W/) ones are ignored; two
// revision_number= tags, or one that is not an integer, are 400 BadRequest.
func parseIfMatch(value string) (rev int64, ok bool, err error) {
	if value == "" || value == "*" {
		return 0, false, nil
	}
	var tags []string
	if ms := etagRE.FindAllStringSubmatch(value, -1); len(ms) == 0 {
		tags = []string{value}
	} else {
		for _, m := range ms {
			if m[1] == "" {
				tags = append(tags, m[2])
			}
		}
	}
	for _, t := range tags {
		n, found := strings.CutPrefix(t, "revision_number=")
		if !found {
			continue
		}
		if ok {
			return 0, false, badIfMatch("Multiple revision_number etags are not supported")
		}
		rev, err = strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if err != nil {
			return 0, false, badIfMatch("Revision number etag must be in the format of revision_number=<int>")
		}
		ok = true
	}
	return rev, ok, nil
}

// ifMatch reads If-Match on every request of the API, and on a PUT or DELETE of a
// resource hands its revision constraint to the store through the request's context
// (db.WithRevisionConstraint): the store checks it in the write's transaction and
// answers 412 RevisionNumberConstraintFailed when the resource is at another revision.
// A constraint on a resource without revision numbers is 400, as in Neutron.
func (s *Server) ifMatch(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		rev, ok, err := parseIfMatch(strings.Join(r.Header.Values("If-Match"), ", "))
		if err != nil {
			return err
		}
		if !ok || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
			return next(c)
		}
		segs := strings.Split(strings.TrimPrefix(c.Path(), "/v2.0/"), "/")
		if len(segs) < 2 || !strings.HasPrefix(segs[1], ":") {
			return next(c)
		}
		kind, known := revisioned[segs[0]]
		if !known {
			return &db.Error{Class: db.ClassInvalid, Type: "BadRequest",
				Message: "Bad " + segs[0] + " request: Revision matching not supported for this resource."}
		}
		ctx := db.WithRevisionConstraint(r.Context(), db.RevisionConstraint{Kind: kind, ID: c.Param(segs[1][1:]), Revision: rev})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}
