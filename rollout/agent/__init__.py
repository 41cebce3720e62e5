"""The agent side: the async episode core (`episode.run_episode`), the policy as an Agents SDK
`Model` (`model.PolicyModel`), the agent's turns (`turns.AgentTurns`) and the engine that runs
many episodes over long-lived clients and sessions (`runner.EpisodeRunner`)."""
