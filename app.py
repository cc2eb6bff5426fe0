"""Face privacy review dashboard: `streamlit run app.py`, then open the link it prints.

This file puts the access gate (dashboard/access.py) in front of Streamlit's server, and adds
the route exports are downloaded from; the dashboard itself, its pages and navigation, is
navigation.py.
"""

import sys

import streamlit as st
from starlette.middleware import Middleware
from starlette.routing import Route

from core.workspace import default_root
from dashboard.access import AccessGate, lifespan, link_file
from dashboard.downloads import download
from dashboard.launch import claim, say_running

# A dashboard already serves this workspace: say what to open, and start no second one.
if (running := claim(default_root())) is not None:
    say_running(running, link_file())
    sys.exit(0)

app = st.App("navigation.py", lifespan=lifespan, middleware=[Middleware(AccessGate)],
             routes=[Route("/download/{export_id:int}/{kind}", download)])
