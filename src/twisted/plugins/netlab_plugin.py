from twisted.application.service import ServiceMaker

netlab = ServiceMaker("netlab", "netlab.tap", "Network lab daemon", "netlab")
