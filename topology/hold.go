package topology

// A VM port whose binding moves to another host (Nova's live migration updates
// binding:host_id; an operator's `port set --host`) may still be plugged on the host it
// left, and not yet on the new one. The engine then holds it: the view realizes it on the
// host it left, as if the binding had not moved, until its tap appears on the new host (or
// leaves the old one), and releases it then. So traffic keeps reaching the VM where it
// is, and is switched to the new host when the VM is there.

// portHold is one held port: where it stays realized and its record as stored.
type portHold struct {
	at  string
	rec *Port
}

// heldRecord returns the record the view realizes for port id when p arrives: p itself,
// or a copy bound to the holding host while p's binding is still the one held. A record
// with another binding (or a delete) ends the hold.
func (v *View) heldRecord(id string, p *Port) *Port {
	h, ok := v.holds[id]
	if !ok {
		return p
	}
	if p == nil || p.HostID != h.rec.HostID {
		delete(v.holds, id)
		return p
	}
	v.holds[id] = portHold{at: h.at, rec: p}
	cp := *p
	cp.HostID = h.at
	return &cp
}

// Hold realizes port id on host instead of its binding host, until Release.
func (v *View) Hold(id, host string) Affected {
	p := v.ports[id]
	if p == nil || host == "" || p.HostID == host {
		return Affected{}
	}
	v.holds[id] = portHold{at: host, rec: p.Port}
	d := newPending()
	d.noMoves = true
	v.setPort(d, id, p.Port)
	return v.finish(d)
}

// Release realizes a held port on its binding host again.
func (v *View) Release(id string) Affected {
	h, ok := v.holds[id]
	if !ok {
		return Affected{}
	}
	delete(v.holds, id)
	d := newPending()
	d.noMoves = true
	v.setPort(d, id, h.rec)
	return v.finish(d)
}

// Held returns the held ports: port -> the host it is realized on.
func (v *View) Held() map[string]string {
	out := make(map[string]string, len(v.holds))
	for id, h := range v.holds {
		out[id] = h.at
	}
	return out
}

// BindingHost is the host port id is bound to in its record (a held port's new host).
func (v *View) BindingHost(id string) string {
	if h, ok := v.holds[id]; ok {
		return h.rec.HostID
	}
	if p := v.ports[id]; p != nil {
		return p.HostID
	}
	return ""
}
