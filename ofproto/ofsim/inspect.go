// What tests read of a switch: counters, role, flows.

package ofsim

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Counts counts flow-mods received (inside bundles too), by command.
type Counts struct {
	Add, Modify, ModifyStrict, Delete, DeleteStrict uint64
	Bundles                                         uint64 // bundles committed
	Errors                                          uint64 // errors sent
	EchoReplies                                     uint64 // echo replies received
	EchoRequests                                    uint64 // echo requests received (and answered)
	Barriers                                        uint64 // barrier requests answered
	FlowStatsRequests                               uint64 // flow stats (dump) requests answered
	Connections                                     uint64 // sessions served
	SlaveRefused                                    uint64 // messages refused with OFPBRC_IS_SLAVE
}

// Counts returns the flow-mod counters.
func (s *Switch) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// CountsFrom returns the counters of what the connections to the controller at addr sent
// (the address Run dialled, or the remote address of a connection given to Serve), over
// all of its sessions.
func (s *Switch) CountsFrom(addr string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.byAddr[addr]; c != nil {
		return *c
	}
	return Counts{}
}

// Role returns the controller role last set by any connection and the switch's generation
// id (see Conns for each connection's role).
func (s *Switch) Role() (role uint32, generation uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.role, s.generation
}

// MissSendLen returns the miss_send_len last set by any connection.
func (s *Switch) MissSendLen() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missSendLen
}

// NumFlows returns the number of flows installed.
func (s *Switch) NumFlows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flows)
}

// Flows returns every flow in ofproto.CompareFlows order.
func (s *Switch) Flows() ([]ofproto.Flow, error) {
	fs, err := s.UnorderedFlows()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(fs, func(a, b ofproto.Flow) int { return ofproto.CompareFlows(&a, &b) })
	return fs, nil
}

// UnorderedFlows returns every flow in no particular order (cheaper than Flows).
func (s *Switch) UnorderedFlows() ([]ofproto.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ofproto.Flow, 0, len(s.flows))
	for _, e := range s.flows {
		f, err := e.flow()
		if err != nil {
			return nil, fmt.Errorf("ofsim %016x: stored flow does not decode: %w", s.cfg.DPID, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// AppendFlowMods appends every flow, in no particular order, as the OFPT_FLOW_MOD (ADD)
// messages that install them, one after the other: the flows in OpenFlow's wire form, for
// a reader in another process (DecodeFlowMods). It decodes nothing.
func (s *Switch) AppendFlowMods(b []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.flows {
		n += 48 + len(e.body)
	}
	b = slices.Grow(b, n)
	for _, e := range s.flows {
		b = e.appendFlowMod(b)
	}
	return b
}

// DecodeFlowMods decodes what AppendFlowMods wrote: the same flows UnorderedFlows returns.
func DecodeFlowMods(b []byte) ([]ofproto.Flow, error) {
	n := 0
	for rest := b; len(rest) >= ofproto.HeaderLen; n++ {
		l := int(binary.BigEndian.Uint16(rest[2:]))
		if l < ofproto.HeaderLen || l > len(rest) {
			break
		}
		rest = rest[l:]
	}
	out := make([]ofproto.Flow, 0, n)
	for len(b) > 0 {
		h, err := ofproto.ParseHeader(b)
		if err != nil {
			return nil, fmt.Errorf("ofsim: flow-mods: %w", err)
		}
		if int(h.Length) < ofproto.HeaderLen || int(h.Length) > len(b) {
			return nil, fmt.Errorf("ofsim: flow-mods: message of %d bytes, %d left: %w", h.Length, len(b), ofproto.ErrBadLength)
		}
		f, err := decodeStored(b[:h.Length])
		if err != nil {
			return nil, fmt.Errorf("ofsim: flow-mods: %w", err)
		}
		out = append(out, f)
		b = b[h.Length:]
	}
	return out, nil
}

// DumpFlows returns the flows one per line in ovs-ofctl syntax (like --no-stats dump-flows).
func (s *Switch) DumpFlows() (string, error) {
	fs, err := s.Flows()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i := range fs {
		b.WriteString(fs[i].String())
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// DumpLines returns flows as DumpFlows prints them, one string each, sorted: what a switch
// holding exactly flows dumps, whatever their order and that of their match fields.
func DumpLines(flows []ofproto.Flow) []string {
	out := make([]string, len(flows))
	for i := range flows {
		f := flows[i]
		f.Match = slices.Clone(f.Match).Canonical()
		out[i] = f.String()
	}
	slices.Sort(out)
	return out
}

// SplitDump returns the lines of dump, a DumpFlows, sorted.
func SplitDump(dump string) []string {
	if strings.TrimSpace(dump) == "" {
		return nil
	}
	out := strings.Split(strings.TrimSpace(dump), "\n")
	slices.Sort(out)
	return out
}

// AddFlow installs f directly (as another controller or ovs-ofctl would), without
// counting it as received from the controller.
func (s *Switch) AddFlow(f ofproto.Flow) error {
	msg := ofproto.AppendFlowMod(nil, 0, ofproto.FlowAdd, &f, 0)
	fm, err := ofproto.DecodeFlowMod(msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flows.apply(&fm, msg, s.cfg.NumTables, time.Now()); err != nil {
		return fmt.Errorf("ofsim: add flow %s: refused", f.String())
	}
	return nil
}

// ReplaceFlows deletes every flow and installs flows directly, as a full resync by another
// controller would; the connection tracker keeps its connections.
func (s *Switch) ReplaceFlows(flows []ofproto.Flow) error {
	msg := ofproto.AppendFlowDelete(nil, 0, ofproto.TableAll, 0, nil, 0, 0, false)
	fm, err := ofproto.DecodeFlowMod(msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	err = s.flows.apply(&fm, msg, s.cfg.NumTables, time.Now())
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("ofsim: delete all flows: %w", err)
	}
	for _, f := range flows {
		if err := s.AddFlow(f); err != nil {
			return err
		}
	}
	return nil
}
