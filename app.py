"""Face privacy review dashboard: `streamlit run app.py`, then open the link it prints.

This file puts the access gate (dashboard/access.py) in front of Streamlit's server, and adds
the route exports are downloaded from; the dashboard itself, its pages and navigation, is
navigation.py.
"""

import streamlit as st
from starlette.middleware import Middleware
from starlette.routing import Route

from dashboard.access import AccessGate, lifespan
from dashboard.downloads import download

app = st.App("navigation.py", lifespan=lifespan, middleware=[Middleware(AccessGate)],
             routes=[Route("/download/{export_id:int}/{kind}", download)])
