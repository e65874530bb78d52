package northbound

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// Tags of resources with standard attributes (Neutron's standard-attr-tag extension,
// neutron/extensions/tagging.py): under /v2.0/{collection}/{id}/tags, GET lists a
// resource's tags (200), PUT replaces them all (200, {"tags": [...]}), DELETE removes them
// all (204); under .../tags/{tag}, GET checks one (204, or 404 TagNotFound), PUT adds one
// (201) and DELETE removes one (204, or 404 TagNotFound). Whoever sees the resource may
// read its tags; only its project (or an admin) may change them, as Neutron's
// <verb>_<collection>_tags policies say. A resource the caller cannot see is 404
// TagResourceNotFound.

// maxTagLen is Neutron's MAX_TAG_LEN.
const maxTagLen = 255

// tagParent is a collection whose resources have tags (those with standard attributes).
// Its visible function is the collection's one visibility rule: seeTarget uses it too.
type tagParent struct {
	// collection is its URL segment, resource Neutron's name of it in messages and
	// policies (security_groups).
	collection, resource string
	kind                 topology.Kind
	// visible returns the project and tags of a resource the caller sees, or the
	// resource's NotFound.
	visible func(s *Server, c echo.Context, id string) (project string, tags []string, err error)
}

var tagParents = []tagParent{
	{"networks", "networks", topology.KindNetwork, func(s *Server, c echo.Context, id string) (string, []string, error) {
		n, err := s.visibleNetwork(c, id)
		if err != nil {
			return "", nil, err
		}
		return n.ProjectID, n.Tags, nil
	}},
	{"subnets", "subnets", topology.KindSubnet, func(s *Server, c echo.Context, id string) (string, []string, error) {
		sn, err := s.visibleSubnet(c, id)
		if err != nil {
			return "", nil, err
		}
		return sn.ProjectID, sn.Tags, nil
	}},
	{"subnetpools", "subnetpools", topology.KindSubnetPool, func(s *Server, c echo.Context, id string) (string, []string, error) {
		p, err := s.visibleSubnetPool(c, id)
		if err != nil {
			return "", nil, err
		}
		return p.ProjectID, p.Tags, nil
	}},
	{"ports", "ports", topology.KindPort, func(s *Server, c echo.Context, id string) (string, []string, error) {
		p, err := s.ownedPort(c, id)
		if err != nil {
			return "", nil, err
		}
		return p.ProjectID, p.Tags, nil
	}},
	{"routers", "routers", topology.KindRouter, func(s *Server, c echo.Context, id string) (string, []string, error) {
		r, err := s.ownedRouter(c, id)
		if err != nil {
			return "", nil, err
		}
		return r.ProjectID, r.Tags, nil
	}},
	{"floatingips", "floatingips", topology.KindFloatingIP, func(s *Server, c echo.Context, id string) (string, []string, error) {
		f, err := s.ownedFloatingIP(c, id)
		if err != nil {
			return "", nil, err
		}
		return f.ProjectID, f.Tags, nil
	}},
	{"security-groups", "security_groups", topology.KindSecurityGroup, func(s *Server, c echo.Context, id string) (string, []string, error) {
		g, err := s.ownedGroup(c, id)
		if err != nil {
			return "", nil, err
		}
		return g.Group.ProjectID, g.Group.Tags, nil
	}},
}

// tagRoutes adds the tag routes of every tagged collection.
func (s *Server) tagRoutes(v *echo.Group) {
	for _, p := range tagParents {
		base := "/" + p.collection + "/:id/tags"
		v.GET(base, s.tagHandler(p, s.listTags))
		v.PUT(base, s.tagHandler(p, s.replaceTags))
		v.DELETE(base, s.tagHandler(p, s.deleteTags))
		v.GET(base+"/:tag", s.tagHandler(p, s.checkTag))
		v.PUT(base+"/:tag", s.tagHandler(p, s.addTag))
		v.DELETE(base+"/:tag", s.tagHandler(p, s.deleteTag))
	}
}

func (s *Server) tagHandler(p tagParent, h func(echo.Context, tagParent) error) echo.HandlerFunc {
	return func(c echo.Context) error { return h(c, p) }
}

// isTagRoute reports whether the request's route is one of tagRoutes'.
func isTagRoute(c echo.Context) bool {
	parts := routeParts(c)
	return len(parts) >= 3 && parts[1] == ":id" && parts[2] == "tags"
}

// tagPolicyAction is the policy rule of a tag request: get_networks_tags,
// update_security_groups_tags.
func tagPolicyAction(c echo.Context) string {
	verb := map[string]string{http.MethodPut: "update", http.MethodDelete: "delete"}[c.Request().Method]
	if verb == "" {
		verb = "get"
	}
	return verb + "_" + strings.ReplaceAll(collection(c), "-", "_") + "_tags"
}

// tagResourceNotFound turns a resource's NotFound (not TagNotFound) into Neutron's
// TagResourceNotFound.
func tagResourceNotFound(c echo.Context, err error) error {
	if de, ok := db.AsError(err); ok && de.Class == db.ClassNotFound && de.Type != "TagNotFound" {
		return notFound("TagResourceNotFound", "Resource %s %s could not be found.",
			strings.ReplaceAll(collection(c), "-", "_"), c.Param("id"))
	}
	return err
}

// seeTagged returns the tags of the request's resource, which the caller must see.
func (s *Server) seeTagged(c echo.Context, p tagParent) ([]string, error) {
	_, tags, err := p.visible(s, c, c.Param("id"))
	if err != nil {
		return nil, tagResourceNotFound(c, err)
	}
	return orEmpty(tags), nil
}

// ownTagged checks that the caller may change the tags of the request's resource.
func (s *Server) ownTagged(c echo.Context, p tagParent) error {
	project, _, err := p.visible(s, c, c.Param("id"))
	if err != nil {
		return tagResourceNotFound(c, err)
	}
	if !callerOf(c).owns(project) {
		return forbidden("rule:%s is disallowed by policy", tagPolicyAction(c))
	}
	return nil
}

// tagParam returns the request's {tag}, checked as Neutron's validate_tag does.
func tagParam(c echo.Context) (string, error) {
	tag := c.Param("tag")
	if c.Request().URL.RawPath != "" { // Echo matched the escaped path: unescape the tag
		t, err := url.PathUnescape(tag)
		if err != nil {
			return "", invalidInput("'%s' is not a valid string.", tag)
		}
		tag = t
	}
	if utf8.RuneCountInString(tag) > maxTagLen {
		return "", invalidInput("'%s' exceeds maximum length of %d.", tag, maxTagLen)
	}
	return tag, nil
}

// checkTags checks a list of tags as Neutron's validate_list_of_unique_strings with
// MAX_TAG_LEN does, returning its message for a bad one: a list of distinct strings of
// at most 255 characters (empty ones and commas allowed).
func checkTags(r json.RawMessage) ([]string, string) {
	var items []any
	if isNull(r) || json.Unmarshal(r, &items) != nil {
		var s string
		if json.Unmarshal(r, &s) == nil {
			return nil, fmt.Sprintf("'%s' is not a list", s)
		}
		return nil, fmt.Sprintf("'%s' is not a list", string(r))
	}
	seen := map[string]bool{}
	var dups []string
	for _, it := range items {
		k := fmt.Sprint(it)
		if seen[k] && !slices.Contains(dups, k) {
			dups = append(dups, k)
		}
		seen[k] = true
	}
	if len(dups) > 0 {
		sort.Strings(dups)
		return nil, fmt.Sprintf("Duplicate items in the list: '%s'", strings.Join(dups, ", "))
	}
	tags := make([]string, 0, len(items))
	for _, it := range items {
		t, ok := it.(string)
		if !ok {
			return nil, fmt.Sprintf("'%v' is not a valid string", it)
		}
		if utf8.RuneCountInString(t) > maxTagLen {
			return nil, fmt.Sprintf("'%s' exceeds maximum length of %d", t, maxTagLen)
		}
		tags = append(tags, t)
	}
	return tags, ""
}

// createTags reads the tags of a create body (ports only, as Neutron's
// tag-ports-during-bulk-creation): nil when it has none.
func createTags(b *body) ([]string, error) {
	r, ok := b.fields["tags"]
	if !ok {
		return nil, nil
	}
	tags, msg := checkTags(r)
	if msg != "" {
		return nil, badBody("Invalid input for tags. Reason: %s.", msg)
	}
	return tags, nil
}

// listTags answers GET .../tags: {"tags": [...]}.
func (s *Server) listTags(c echo.Context, p tagParent) error {
	tags, err := s.seeTagged(c, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"tags": tags})
}

// checkTag answers GET .../tags/{tag}: 204 when the resource has the tag.
func (s *Server) checkTag(c echo.Context, p tagParent) error {
	tag, err := tagParam(c)
	if err != nil {
		return err
	}
	tags, err := s.seeTagged(c, p)
	if err != nil {
		return err
	}
	if !slices.Contains(tags, tag) {
		return db.TagNotFound(tag)
	}
	return c.NoContent(http.StatusNoContent)
}

// replaceTags answers PUT .../tags with {"tags": [...]}: the resource's tags become those.
func (s *Server) replaceTags(c echo.Context, p tagParent) error {
	raw, err := readRaw(c, maxBody)
	if err != nil {
		return err
	}
	if len(raw) > maxBody {
		return tooLarge("Request is too large: the body is limited to %d bytes.", maxBody)
	}
	var env map[string]json.RawMessage
	if json.Unmarshal(raw, &env) != nil || env == nil || env["tags"] == nil {
		return invalidInput("Invalid tags body.")
	}
	tags, msg := checkTags(env["tags"])
	if msg != "" {
		return invalidInput("%s.", msg)
	}
	if err := s.ownTagged(c, p); err != nil {
		return err
	}
	if _, err := s.store.ReplaceTags(c.Request().Context(), p.kind, c.Param("id"), tags); err != nil {
		return tagResourceNotFound(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"tags": tags})
}

// deleteTags answers DELETE .../tags: the resource has no tags left.
func (s *Server) deleteTags(c echo.Context, p tagParent) error {
	if err := s.ownTagged(c, p); err != nil {
		return err
	}
	if _, err := s.store.ReplaceTags(c.Request().Context(), p.kind, c.Param("id"), nil); err != nil {
		return tagResourceNotFound(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// addTag answers PUT .../tags/{tag}: 201, whether or not the resource had the tag.
func (s *Server) addTag(c echo.Context, p tagParent) error {
	tag, err := tagParam(c)
	if err != nil {
		return err
	}
	if err := s.ownTagged(c, p); err != nil {
		return err
	}
	if err := s.store.AddTag(c.Request().Context(), p.kind, c.Param("id"), tag); err != nil {
		return tagResourceNotFound(c, err)
	}
	return c.NoContent(http.StatusCreated)
}

// deleteTag answers DELETE .../tags/{tag}: 204, or 404 TagNotFound.
func (s *Server) deleteTag(c echo.Context, p tagParent) error {
	tag, err := tagParam(c)
	if err != nil {
		return err
	}
	if err := s.ownTagged(c, p); err != nil {
		return err
	}
	if err := s.store.RemoveTag(c.Request().Context(), p.kind, c.Param("id"), tag); err != nil {
		return tagResourceNotFound(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}
