"""The relay: customers (and, later, agents) connect here over Socket.IO; messages go to the bot or to an agent."""
