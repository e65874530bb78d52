"""Minimal os-ken app answering ARP from a static table, for `ofbench arp`.

It is what a Neutron-style OpenFlow 1.3 controller built on os-ken (Neutron's own OpenFlow
framework) does for an ARP packet-in: parse the frame with os_ken.lib.packet, look the
target address up, build the reply with the same library and send it back out of the
asking port in a PACKET_OUT. Requests for unknown addresses, gratuitous ARP and probes for
the asker's own address are not answered, as dvrflow does not answer them.

The table is a JSON object {"10.1.0.5": "fa:16:3e:00:00:05", ...} in the file named by the
OFBENCH_ARP_TABLE environment variable. Run it with
    OFBENCH_ARP_TABLE=table.json osken-manager --ofp-tcp-listen-port 6653 osken_arp.py
"""

import json
import os

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ether, ofproto_v1_3


class ARPResponder(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with open(os.environ["OFBENCH_ARP_TABLE"]) as f:
            self.table = json.load(f)
        self.logger.info("answering ARP for %d addresses", len(self.table))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        pkt = packet.Packet(msg.data)
        req = pkt.get_protocol(arp.arp)
        if req is None or req.opcode != arp.ARP_REQUEST or req.src_ip == req.dst_ip:
            return
        mac = self.table.get(req.dst_ip)
        if mac is None or mac == req.src_mac:
            return
        reply = packet.Packet()
        reply.add_protocol(ethernet.ethernet(dst=req.src_mac, src=mac, ethertype=ether.ETH_TYPE_ARP))
        reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=mac, src_ip=req.dst_ip,
                                   dst_mac=req.src_mac, dst_ip=req.src_ip))
        reply.serialize()
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER,
                                        in_port=ofp.OFPP_CONTROLLER,
                                        actions=[parser.OFPActionOutput(msg.match["in_port"])],
                                        data=reply.data))
