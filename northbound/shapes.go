package northbound

import (
	"time"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// Neutron's timestamp format.
const timeFormat = "2006-01-02T15:04:05Z"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func networkShape(n *topology.Network) map[string]any {
	var seg any = n.SegmentationID
	if n.NetworkType == topology.NetworkTypeFlat {
		seg = nil
	}
	subnets := n.Subnets
	if subnets == nil {
		subnets = []string{}
	}
	return map[string]any{
		"id": n.ID, "name": n.Name, "description": n.Description,
		"tenant_id": n.ProjectID, "project_id": n.ProjectID,
		"admin_state_up": n.AdminStateUp, "status": n.Status, "shared": n.Shared,
		"router:external":           n.External,
		"provider:network_type":     n.NetworkType,
		"provider:physical_network": nullIfEmpty(n.PhysicalNetwork),
		"provider:segmentation_id":  seg,
		"mtu":                       n.MTU, "subnets": subnets,
		"port_security_enabled": n.PortSecurityEnabled, "availability_zones": []string{}, "availability_zone_hints": []string{},
		"ipv4_address_scope": nil, "ipv6_address_scope": nil, "tags": orEmpty(n.Tags),
		"created_at": ts(n.CreatedAt), "updated_at": ts(n.UpdatedAt), "revision_number": n.RevisionNumber,
	}
}

func subnetShape(s *topology.Subnet) map[string]any {
	return map[string]any{
		"id": s.ID, "name": s.Name, "description": s.Description,
		"tenant_id": s.ProjectID, "project_id": s.ProjectID, "network_id": s.NetworkID,
		"ip_version": s.IPVersion, "cidr": s.CIDR, "gateway_ip": nullIfEmpty(s.GatewayIP),
		"allocation_pools": orEmpty(s.AllocationPools), "host_routes": orEmpty(s.HostRoutes),
		"dns_nameservers": orEmpty(s.DNSNameservers), "enable_dhcp": s.EnableDHCP,
		"ipv6_ra_mode": nullIfEmpty(s.IPv6RAMode), "ipv6_address_mode": nullIfEmpty(s.IPv6AddressMode), "subnetpool_id": nullIfEmpty(s.SubnetPoolID), "service_types": []string{},
		"tags": orEmpty(s.Tags), "created_at": ts(s.CreatedAt), "updated_at": ts(s.UpdatedAt), "revision_number": s.RevisionNumber,
	}
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// portShape is a port as Neutron shows it. registered says whether its binding host is
// a registered host: a port bound to an unknown host is binding_failed, as in Neutron.
func portShape(p *topology.Port, registered bool) map[string]any {
	vif := "unbound"
	details := map[string]any{}
	switch {
	case p.HostID == "":
	case !registered:
		vif = "binding_failed"
	default:
		vif = "ovs"
		details = map[string]any{"port_filter": true, "ovs_hybrid_plug": false, "datapath_type": "netdev", "bridge_name": "br-int"}
	}
	fixed := make([]any, 0, len(p.FixedIPs))
	for _, f := range p.FixedIPs {
		fixed = append(fixed, map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IPAddress})
	}
	pairs := make([]any, 0, len(p.AllowedAddressPairs))
	for _, ap := range p.AllowedAddressPairs {
		pairs = append(pairs, map[string]any{"ip_address": ap.IPAddress, "mac_address": ap.MACAddress})
	}
	opts := make([]any, 0, len(p.ExtraDHCPOpts))
	for _, o := range p.ExtraDHCPOpts {
		opts = append(opts, map[string]any{"opt_name": o.OptName, "opt_value": o.OptValue, "ip_version": o.IPVersion})
	}
	return map[string]any{
		"id": p.ID, "name": p.Name, "description": p.Description,
		"tenant_id": p.ProjectID, "project_id": p.ProjectID, "network_id": p.NetworkID,
		"mac_address": p.MACAddress, "fixed_ips": fixed,
		"device_owner": p.DeviceOwner, "device_id": p.DeviceID,
		"binding:host_id": p.HostID, "binding:vif_type": vif, "binding:vnic_type": "normal",
		"binding:vif_details": details, "binding:profile": map[string]any{},
		"status": p.Status, "admin_state_up": p.AdminStateUp,
		"security_groups": orEmpty(p.SecurityGroups), "allowed_address_pairs": pairs, "extra_dhcp_opts": opts,
		"port_security_enabled": p.PortSecurityEnabled, "tags": orEmpty(p.Tags),
		"created_at": ts(p.CreatedAt), "updated_at": ts(p.UpdatedAt), "revision_number": p.RevisionNumber,
	}
}

func gatewayShape(g *topology.GatewayInfo) any {
	if g == nil {
		return nil
	}
	fixed := make([]any, 0, len(g.ExternalFixedIPs))
	for _, f := range g.ExternalFixedIPs {
		fixed = append(fixed, map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IPAddress})
	}
	return map[string]any{"network_id": g.NetworkID, "enable_snat": g.EnableSNAT, "external_fixed_ips": fixed}
}

func routerShape(r *topology.Router) map[string]any {
	return map[string]any{
		"id": r.ID, "name": r.Name, "description": r.Description,
		"tenant_id": r.ProjectID, "project_id": r.ProjectID,
		"admin_state_up": r.AdminStateUp, "status": r.Status,
		"distributed": r.Distributed, "ha": false,
		"external_gateway_info": gatewayShape(r.Gateway), "routes": []any{},
		"availability_zones": []string{}, "availability_zone_hints": []string{}, "flavor_id": nil,
		"tags": orEmpty(r.Tags), "created_at": ts(r.CreatedAt), "updated_at": ts(r.UpdatedAt), "revision_number": r.RevisionNumber,
	}
}

func floatingIPShape(f *topology.FloatingIP) map[string]any {
	return map[string]any{
		"id": f.ID, "description": f.Description,
		"tenant_id": f.ProjectID, "project_id": f.ProjectID,
		"floating_network_id": f.FloatingNetworkID, "floating_ip_address": f.FloatingIPAddress,
		"port_id": nullIfEmpty(f.PortID), "fixed_ip_address": nullIfEmpty(f.FixedIPAddress),
		"router_id": nullIfEmpty(f.RouterID), "status": f.Status,
		"port_details": nil, "dns_domain": "", "dns_name": "", "tags": orEmpty(f.Tags),
		"created_at": ts(f.CreatedAt), "updated_at": ts(f.UpdatedAt), "revision_number": f.RevisionNumber,
	}
}

func (s *Server) alive(h *topology.Host, now time.Time) bool {
	return now.Sub(h.Heartbeat) <= s.cfg.AgentDownTime
}

func (s *Server) hostShape(h *topology.Host, now time.Time) map[string]any {
	bridges := h.Bridges
	if bridges == nil {
		bridges = map[string]string{}
	}
	return map[string]any{
		"host": h.Name, "tunnel_ip": h.TunnelIP, "mode": h.Mode, "bridges": bridges,
		"mac_address": h.MACAddress, "applied_revision": h.AppliedRevision,
		"heartbeat_timestamp": ts(h.Heartbeat), "alive": s.alive(h, now),
		"created_at": ts(h.CreatedAt), "updated_at": ts(h.UpdatedAt),
	}
}

// agentShapes presents a host as Neutron would show its OVS agent and L3 agent, with the
// settings an admin gave them (by agent ID; defaults for the others).
func (s *Server) agentShapes(h *topology.Host, settings map[string]db.AgentSettings, now time.Time) []map[string]any {
	common := func(typ, binary, topic string, conf map[string]any) map[string]any {
		id := db.AgentID(h.Name, typ)
		set, ok := settings[id]
		if !ok {
			set = db.DefaultAgentSettings()
		}
		var desc any
		if set.Description != nil {
			desc = *set.Description
		}
		return map[string]any{
			"id": id, "agent_type": typ, "binary": binary, "topic": topic,
			"host": h.Name, "admin_state_up": set.AdminStateUp, "alive": s.alive(h, now),
			"availability_zone": nil, "description": desc, "configurations": conf,
			"created_at":          h.CreatedAt.UTC().Format("2006-01-02 15:04:05"),
			"started_at":          h.CreatedAt.UTC().Format("2006-01-02 15:04:05"),
			"heartbeat_timestamp": h.Heartbeat.UTC().Format("2006-01-02 15:04:05"),
			"resources_synced":    nil,
		}
	}
	bridges := map[string]any{}
	for k, v := range h.Bridges {
		bridges[k] = v
	}
	ovs := common(db.AgentTypeOVS, "neutron-openvswitch-agent", "N/A", map[string]any{
		"tunnel_types": []string{"vxlan"}, "tunneling_ip": h.TunnelIP, "l2_population": true,
		"arp_responder_enabled": true, "enable_distributed_routing": true,
		"datapath_type": "netdev", "integration_bridge": "br-int", "bridges": bridges,
		"dvr_host_mac": h.MACAddress,
	})
	l3 := common(db.AgentTypeL3, "neutron-l3-agent", "l3_agent", map[string]any{
		"agent_mode": h.Mode, "gateway_external_network_id": "", "external_network_bridge": "",
	})
	return []map[string]any{ovs, l3}
}
